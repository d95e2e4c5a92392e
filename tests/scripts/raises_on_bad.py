"""run() raises ValueError for a mini-batch holding a file whose content has "bad";
other mini-batches return "<file name> ok" per file, after $OK_SECONDS (default 0)."""

import os
import time


def run(mini_batch):
    for path in mini_batch:
        with open(path, encoding="utf-8") as f:
            if "bad" in f.read():
                raise ValueError(f"cannot score {os.path.basename(path)}: corrupt input")
    time.sleep(float(os.environ.get("OK_SECONDS", "0")))
    return [f"{os.path.basename(path)} ok" for path in mini_batch]
