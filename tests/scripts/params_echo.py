"""Shows what a deployment's invocation gives the script: run() returns, per file,
"<file name> argv=<sys.argv[1:] joined by ','> env=<BATCHFX_PARAM_* as NAME=value, sorted>"."""

import os
import sys


def init():
    pass  # nothing to load


def run(mini_batch):
    argv = ",".join(sys.argv[1:])
    env = ",".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                   if k.startswith("BATCHFX_PARAM_"))
    return [f"{os.path.basename(path)} argv={argv} env={env}" for path in mini_batch]
