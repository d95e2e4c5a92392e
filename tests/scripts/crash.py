"""run() kills its own process with os._exit(3), as a native crash or abort would, for a
mini-batch holding a file named crash*; other mini-batches return the file names."""

import os


def run(mini_batch):
    names = [os.path.basename(path) for path in mini_batch]
    if any(name.startswith("crash") for name in names):
        os._exit(3)
    return names
