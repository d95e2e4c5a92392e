"""run() returns a pandas DataFrame with columns file (name) and length (size in bytes)."""

import os

import pandas as pd


def run(mini_batch):
    return pd.DataFrame(
        {
            "file": [os.path.basename(p) for p in mini_batch],
            "length": [os.path.getsize(p) for p in mini_batch],
        }
    )
