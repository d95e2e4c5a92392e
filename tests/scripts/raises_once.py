"""run() raises RuntimeError the first time in a process that a mini-batch holds a file
named flaky*; afterwards (a retry) it returns the file names."""

import os

_raised = False


def _check(names):
    global _raised
    if not _raised and any(name.startswith("flaky") for name in names):
        _raised = True
        raise RuntimeError("flaky input failed on its first try")


def run(mini_batch):
    names = [os.path.basename(path) for path in mini_batch]
    _check(names)
    return names
