"""Each file's content says what happens to it: "ok" scores (one row), "bad" raises
ValueError (its mini-batch fails, isolation finds it), "drop" returns no row for it (a
partial failure), "die" kills the script process (a lost worker). Each mini-batch first
sleeps $MIXED_SECONDS and touches a file in $MIXED_MARKER_DIR, so a test can act while
mini-batches run."""

import os
import time


def run(mini_batch):
    marker = os.environ.get("MIXED_MARKER_DIR")
    if marker:
        open(os.path.join(marker, f"{os.getpid()}-{time.monotonic_ns()}"), "w").close()
    time.sleep(float(os.environ.get("MIXED_SECONDS", "0")))
    results = []
    for path in mini_batch:
        with open(path, encoding="utf-8") as f:
            what = f.read().strip()
        name = os.path.basename(path)
        if what == "bad":
            raise ValueError(f"cannot score {name}")
        if what == "die":
            os._exit(3)
        if what != "drop":
            results.append(f"{name} ok")
    return results
