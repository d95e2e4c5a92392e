"""Fails some items: returns "<file name> ok" only for files whose content has no "bad"."""

import os


def run(mini_batch):
    results = []
    for path in mini_batch:
        with open(path, encoding="utf-8") as f:
            if "bad" in f.read():
                continue  # not returned: this item counts as failed
        results.append(f"{os.path.basename(path)} ok")
    return results
