"""Raises for any mini-batch holding a file with "bad" in it. The first $STALL_TIMES
times it is called with fewer than $FULL_SIZE files (isolation runs), it writes a file into
the folder $STALL_MARKERS and sleeps 60 s, so a test can kill the worker while isolating."""

import os
import time


def run(mini_batch):
    markers = os.environ["STALL_MARKERS"]
    if (len(mini_batch) < int(os.environ["FULL_SIZE"])
            and len(os.listdir(markers)) < int(os.environ["STALL_TIMES"])):
        with open(os.path.join(markers, str(os.getpid())), "w", encoding="utf-8") as f:
            f.write("stalled")
        time.sleep(60)
    for path in mini_batch:
        with open(path, encoding="utf-8") as f:
            if "bad" in f.read():
                raise ValueError(f"cannot score {os.path.basename(path)}: corrupt input")
    return [f"{os.path.basename(path)} ok" for path in mini_batch]
