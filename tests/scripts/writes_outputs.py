"""Writes custom outputs to AZUREML_BI_OUTPUT_PATH: "summary.txt" (the same name in every
worker: a collision) and "mb-<index>.txt" (a name of its own). Before returning, run()
waits (up to 30 s) until WORKERS_DIR holds a file from two script processes, so that two
workers surely each take a mini-batch."""

import os
import time


def run(mini_batch, context):
    out = os.environ["AZUREML_BI_OUTPUT_PATH"]
    with open(os.path.join(out, "summary.txt"), "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()} {context.minibatch_index}\n")
    with open(os.path.join(out, f"mb-{context.minibatch_index}.txt"), "w",
              encoding="utf-8") as f:
        f.write(str(os.getpid()))
    folder = os.environ["WORKERS_DIR"]
    open(os.path.join(folder, str(os.getpid())), "w").close()  # this script process
    deadline = time.monotonic() + 30
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    return [os.path.basename(p) for p in mini_batch]
