"""run() leaves a marker in $RENDEZVOUS_DIR and waits (up to 30 s) until $RENDEZVOUS_COUNT
markers are there: it returns "<file name> together" when they all were (the runs were
under way at the same time), else "<file name> alone"."""

import os
import time


def run(mini_batch):
    folder = os.environ["RENDEZVOUS_DIR"]
    count = int(os.environ.get("RENDEZVOUS_COUNT", "2"))
    open(os.path.join(folder, f"{os.getpid()}-{time.monotonic_ns()}"), "w").close()
    deadline = time.monotonic() + 30
    while len(os.listdir(folder)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    word = "together" if len(os.listdir(folder)) >= count else "alone"
    return [f"{os.path.basename(path)} {word}" for path in mini_batch]
