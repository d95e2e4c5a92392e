"""run() raises ValueError for a mini-batch holding a file whose content has "bad";
other mini-batches return "<file name> ok" per file."""

import os


def run(mini_batch):
    for path in mini_batch:
        with open(path, encoding="utf-8") as f:
            if "bad" in f.read():
                raise ValueError(f"cannot score {os.path.basename(path)}: corrupt input")
    return [f"{os.path.basename(path)} ok" for path in mini_batch]
