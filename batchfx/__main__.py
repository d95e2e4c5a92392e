"""``python -m batchfx``: the same as the ``batchfx`` command."""

from batchfx.cli import entry

entry()
