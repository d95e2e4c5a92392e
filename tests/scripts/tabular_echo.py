"""Tabular echo: run(df, context) returns one row per input row: the input's id, a computed
column (id * 2), the mini-batch index, and for each partition key the row's own value next
to the value in context.partition_key_value (they must agree: no mini-batch mixes groups)."""

import pandas as pd


def run(mini_batch, context):
    ids = mini_batch["id"].to_numpy()
    out = pd.DataFrame({"id": ids, "double": ids * 2, "mini_batch": context.minibatch_index})
    for key, value in context.partition_key_value.items():
        own = mini_batch[key] if key in mini_batch else pd.Series([value] * len(ids))
        out[f"{key}_row"] = own.astype(str).to_numpy()
        out[f"{key}_context"] = str(value)
    return out
