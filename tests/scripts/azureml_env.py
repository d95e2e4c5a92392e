"""Reads what Azure ML gives a script: --threshold from sys.argv, AZUREML_MODEL_DIR, a job
environment variable GREETING and AZUREML_BI_OUTPUT_PATH (init writes init_done.txt there).
run() returns "<file name> threshold=.. model=.. greeting=.. argv0=.. cwd=.." per file.
"""

import argparse
import os
import sys

import echo  # a sibling module: the code folder is importable, as in Azure ML

settings = {}


def init():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threshold", type=float, default=0.5)
    args, _unknown = parser.parse_known_args()
    settings["threshold"] = args.threshold
    settings["model"] = os.environ["AZUREML_MODEL_DIR"]
    settings["greeting"] = os.environ.get("GREETING", "")
    settings["argv0"] = os.path.basename(sys.argv[0])
    settings["cwd"] = os.getcwd()
    output = os.environ["AZUREML_BI_OUTPUT_PATH"]
    with open(os.path.join(output, "init_done.txt"), "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    assert callable(echo.run)


def run(mini_batch):
    values = " ".join(f"{k}={v}" for k, v in settings.items())
    return [f"{os.path.basename(path)} {values}" for path in mini_batch]
