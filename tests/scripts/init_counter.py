"""init() appends "init <pid>" to the file named by $INIT_COUNT_FILE, shutdown() appends
"shutdown <pid>"; run() returns the file names."""

import os


def _record(event):
    with open(os.environ["INIT_COUNT_FILE"], "a", encoding="utf-8") as f:
        f.write(f"{event} {os.getpid()}\n")


def init():
    _record("init")


def run(mini_batch):
    return [os.path.basename(path) for path in mini_batch]


def shutdown():
    _record("shutdown")
