"""Rows of each partition key value within one block of rows (a row group, or a block of
lines), and their split into pieces no larger than the limit. Pure (numpy, pandas).

Key values are compared as text (pyarrow's cast to string; null stays None), so the
partitioner and the scoring child, which both read the values, agree on every group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Group", "chunk_rows", "group_rows", "text_columns"]

Rows = npt.NDArray[np.int64]
Group = tuple[str | None, ...]


def text_columns(table: Any, keys: Sequence[str]) -> list[list[str | None]]:
    """The key columns of a pyarrow table as text values (null stays None)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return [pc.cast(table.column(k), pa.string()).to_pylist() for k in keys]


def _value(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def group_rows(columns: Sequence[Sequence[str | None]]) -> list[tuple[Group, Rows]]:
    """Row positions of each key value combination, in order of first appearance."""
    import pandas as pd

    if not columns or not len(columns[0]):
        return []
    frame = pd.DataFrame({i: pd.Series(list(c), dtype="object") for i, c in enumerate(columns)})
    found = frame.groupby(list(frame.columns), sort=False, dropna=False).indices
    groups: list[tuple[Group, Rows]] = []
    for key, rows in found.items():
        values = key if isinstance(key, tuple) else (key,)
        groups.append((tuple(_value(v) for v in values), np.asarray(rows, dtype=np.int64)))
    groups.sort(key=lambda pair: int(pair[1][0]))
    return groups


def chunk_rows(rows: Rows, weights: npt.NDArray[np.int64] | None,
               limit: int) -> list[tuple[Rows, int]]:
    """Split a group's rows (sorted) into runs of about ``limit`` weight (1 per row if None)."""
    w = np.ones(rows.size, np.int64) if weights is None else weights[rows]
    # A row goes to the chunk its running total ends in: chunks stay within the limit
    # unless one row alone is heavier.
    chunk = (np.cumsum(w) - 1) // max(1, limit)
    cuts = np.flatnonzero(np.diff(chunk)) + 1
    parts = np.split(rows, cuts)
    sums = np.split(w, cuts)
    return [(part, int(total.sum())) for part, total in zip(parts, sums, strict=True)]
