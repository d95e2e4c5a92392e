"""Returns "<file name> ok" per file, except a 3 MiB row for a file named huge*."""

import os


def run(mini_batch):
    rows = []
    for path in mini_batch:
        name = os.path.basename(path)
        rows.append("x" * (3 * 1024 * 1024) if name.startswith("huge") else f"{name} ok")
    return rows
