"""run() never returns for a mini-batch holding a file named hang*; it writes its pid to
$HANGS_PID_FILE first when that is set. Other mini-batches return the file names."""

import os
import time


def run(mini_batch):
    names = [os.path.basename(path) for path in mini_batch]
    if not any(name.startswith("hang") for name in names):
        return names
    pid_file = os.environ.get("HANGS_PID_FILE")
    if pid_file:
        with open(pid_file + ".tmp", "w", encoding="utf-8") as f:
            f.write(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
    while True:
        time.sleep(3600)
