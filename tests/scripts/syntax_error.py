"""Deliberately invalid Python (excluded from ruff): importing it is a SyntaxError."""


def run(mini_batch)
    return mini_batch
