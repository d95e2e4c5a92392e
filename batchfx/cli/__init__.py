"""The ``batchfx`` command and its client for the HTTP API."""
