"""Tabular: run(df) raises when a row's ``value`` is "bad" (a corrupt row); otherwise it
returns the ids with their values doubled."""

import pandas as pd


def run(mini_batch):
    bad = mini_batch.index[mini_batch["value"].astype(str) == "bad"]
    if len(bad):
        raise ValueError(f"row with id {mini_batch.loc[bad[0], 'id']} is corrupt")
    return pd.DataFrame({"id": mini_batch["id"], "double": mini_batch["value"].astype(int) * 2})
