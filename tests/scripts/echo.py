"""Echo: run() returns "<file name> <first line of the file>" for each input file, and
prints a line to stdout (which goes to the worker log, never into the results)."""

import os


def init():
    pass  # nothing to load


def run(mini_batch):
    print(f"echo: scoring {len(mini_batch)} files")
    results = []
    for path in mini_batch:
        with open(path, encoding="utf-8") as f:
            first_line = f.readline().rstrip("\n")
        results.append(f"{os.path.basename(path)} {first_line}")
    return results
