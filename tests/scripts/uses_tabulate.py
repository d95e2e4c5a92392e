"""Imports a package batchfx does not depend on (tabulate): it comes from the job's
environment. Returns "<file name> <content>" per file, formatted by tabulate."""

import os

from tabulate import tabulate


def run(mini_batch):
    rows = []
    for path in mini_batch:
        with open(path, encoding="utf-8") as f:
            rows.append(f"{os.path.basename(path)} "
                        + tabulate([[f.read().strip()]], tablefmt="plain"))
    return rows
