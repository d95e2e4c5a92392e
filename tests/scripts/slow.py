"""Each run() touches a marker file in $SLOW_MARKER_DIR (named after the first file), sleeps
$SLOW_SECONDS (default 1) and returns "<file name> ok" per file."""

import os
import time


def run(mini_batch):
    marker_dir = os.environ.get("SLOW_MARKER_DIR")
    if marker_dir and mini_batch:
        name = os.path.basename(mini_batch[0])
        with open(os.path.join(marker_dir, f"{name}.{os.getpid()}"), "w") as f:
            f.write("started")
    time.sleep(float(os.environ.get("SLOW_SECONDS", "1")))
    return [f"{os.path.basename(path)} ok" for path in mini_batch]
