"""Tabular predictions: run(df) returns one row per input row, columns id (the input's,
a name clash for join_input) and score (id * 10). It also changes its input frame in
place, which must not show in the joined input columns. Arguments: --drop N leaves out
the last N rows (failed items); --list returns a plain list of scores."""

import argparse

import pandas as pd


def init():
    global args
    parser = argparse.ArgumentParser()
    parser.add_argument("--drop", type=int, default=0)
    parser.add_argument("--list", action="store_true")
    args, _ = parser.parse_known_args()


def run(mini_batch):
    ids = mini_batch["id"].to_numpy().copy()
    mini_batch["id"] = -1  # in place: the joined input keeps the values read
    ids = ids[: max(len(ids) - args.drop, 0)]
    if args.list:
        return [int(i) * 10 for i in ids]
    return pd.DataFrame({"id": ids, "score": ids * 10})
