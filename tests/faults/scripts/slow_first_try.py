"""Echo rows ("<file name> <first line>"), but on the first try of every $SLOW_EVERY-th item
sleep $SLOW_SECONDS: longer than the queue lease, so the message is seen by another worker.
"First" is remembered with marker files in $SLOW_MARKER_DIR (shared by all workers)."""

import os
import time


def run(mini_batch):
    every = int(os.environ.get("SLOW_EVERY", "5"))
    marker_dir = os.environ["SLOW_MARKER_DIR"]
    results = []
    for path in mini_batch:
        name = os.path.basename(path)
        index = int(name.split("-")[1].split(".")[0])
        if index % every == 0:
            marker = os.path.join(marker_dir, name)
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass  # a later try: fast
            else:
                os.close(fd)
                time.sleep(float(os.environ.get("SLOW_SECONDS", "5")))
        with open(path, encoding="utf-8") as f:
            results.append(f"{name} {f.readline().rstrip()}")
    return results
