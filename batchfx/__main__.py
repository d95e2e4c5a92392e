"""``python -m batchfx``: the same as the ``batchfx`` command."""

from batchfx.cli.main import entry

entry()
