"""run() calls sys.exit(42), as a script that gives up the Azure ML way does."""

import sys


def _give_up():
    sys.exit(42)


def run(mini_batch):
    _give_up()
