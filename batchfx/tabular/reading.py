"""The scoring child's side: read a tabular mini-batch's slices into one pandas DataFrame.

Each slice is read with pyarrow (CSV, JSON lines, Parquet), narrowed to its row range and
partition key values, and the slices are joined in order. Column types are inferred per
mini-batch, except partition key columns of CSV, which stay text so that values such as
``007`` keep their form. Runs in the child, so a huge or odd frame never crosses a pipe.

:func:`read_batch_with_sources` also says where each row of the frame comes from: runs
of consecutive rows of one slice, each with its input file and the row number there of
its first row (``first_row``; rows count from 0, the CSV header and empty lines not
counted). Row numbers are known for Parquet (from the footer) and for CSV/JSON-lines
slices that start at the top of their file; a text slice cut further in has
``first_row`` None, since finding it would mean reading the file up to there.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from batchfx.tabular.batch import ReadSlice, TabularBatch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RowSource", "publish_row_sources", "read_batch", "read_batch_with_sources",
           "row_sources"]

_BATCH_ROWS = 64 * 1024
# Row groups decoded whole and kept for the slices of them still to come: the last two,
# of at most this many bytes (uncompressed) each.
_GROUPS_KEPT = 2
_GROUP_BYTES_KEPT = 512 * 1024 * 1024
_groups: OrderedDict[tuple[str, str, int], Any] = OrderedDict()
# (the frame handed to run(), its sources): see publish_row_sources.
_published: tuple[weakref.ref[Any], tuple[RowSource, ...]] | None = None


@dataclass(frozen=True)
class RowSource:
    """Consecutive rows of a mini-batch's frame that come from one slice of one file."""

    slice: int  # position of the slice in batch.slices (= in the manifest line)
    file_name: str  # the input blob name as partitioned (container-relative)
    first_row: int | None  # 0-based row in that file of the first of these rows; None: unknown
    rows: int  # how many consecutive rows of the frame


def read_batch(batch: TabularBatch) -> pd.DataFrame:
    """The mini-batch's rows as one DataFrame (default index 0..n-1), in input order,
    narrowed to ``batch.window`` when set."""
    frame, _ = _read(batch, with_sources=False)
    return frame


def read_batch_with_sources(batch: TabularBatch) -> tuple[pd.DataFrame, tuple[RowSource, ...]]:
    """:func:`read_batch`'s frame, and where its rows come from, in order (their ``rows``
    add up to the frame's length)."""
    return _read(batch, with_sources=True)


def publish_row_sources(frame: pd.DataFrame, sources: tuple[RowSource, ...]) -> None:
    """Make ``sources`` what :func:`row_sources` answers for this very frame object."""
    global _published
    # A weak reference, not DataFrame.attrs: pandas deep-copies attrs on every operation,
    # which slows row-by-row scripts (iterrows) by about a sixth.
    _published = (weakref.ref(frame), sources)


def row_sources(frame: pd.DataFrame) -> tuple[RowSource, ...] | None:
    """The sources published for ``frame`` (the object run() was given), else None."""
    if _published is None or _published[0]() is not frame:
        return None
    return _published[1]


def _read(batch: TabularBatch, *, with_sources: bool,
          ) -> tuple[pd.DataFrame, tuple[RowSource, ...]]:
    tables, sources = [], []
    for number, piece in enumerate(batch.slices):
        table, runs = _read_slice(batch.format, piece, with_sources)
        tables.append(table)
        sources += [RowSource(number, piece.name, first, rows) for first, rows in runs]
    frame = _join(tables)
    if batch.window is None:
        return frame, tuple(sources)
    start, stop = batch.window
    # The rows iloc keeps: range slicing has its semantics (bounds, negative indexes).
    kept = range(len(frame))[start:stop]
    frame = frame.iloc[start:stop].reset_index(drop=True)
    return frame, _narrow(sources, kept.start, max(kept.stop, kept.start))


def _narrow(sources: list[RowSource], start: int, stop: int) -> tuple[RowSource, ...]:
    """The sources of rows [start, stop) of the frame they describe."""
    narrowed, at = [], 0
    for source in sources:
        low, high = max(start - at, 0), min(stop - at, source.rows)
        if high > low:
            first = None if source.first_row is None else source.first_row + low
            narrowed.append(replace(source, first_row=first, rows=high - low))
        at += source.rows
    return tuple(narrowed)


def _join(tables: list[Any]) -> pd.DataFrame:
    import pandas as pd

    frame: pd.DataFrame
    if len(tables) == 1:
        frame = tables[0].to_pandas()
        return frame
    import pyarrow as pa

    try:
        frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Slices typed differently (text in one, numbers in another): let pandas join them.
        frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    return frame


def _read_slice(fmt: str, piece: ReadSlice,
                with_sources: bool) -> tuple[Any, list[tuple[int | None, int]]]:
    """The slice's rows, and (first row in the file, rows) per run of consecutive rows."""
    if fmt == "parquet":
        table = _read_parquet(piece)
    elif fmt == "csv":
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        keys = {k: pa.string() for k, _ in piece.where}
        table = pa_csv.read_csv(piece.path,
                                convert_options=pa_csv.ConvertOptions(column_types=keys))
    elif fmt == "jsonl":
        import pyarrow.json as pa_json

        table = pa_json.read_json(piece.path)
    else:
        raise ValueError(f"format: {fmt!r} is not one of csv, jsonl, parquet")
    if not piece.where:
        return table, [(piece.first_row, table.num_rows)] if table.num_rows else []
    mask = _where_mask(table, piece.where)
    kept = table.filter(mask)
    if piece.first_row is not None and with_sources:
        return kept, _runs(mask, piece.first_row)
    return kept, [(None, kept.num_rows)] if kept.num_rows else []


def _runs(mask: Any, first_row: int) -> list[tuple[int | None, int]]:
    """(first row, length) of each run of consecutive kept rows."""
    import numpy as np

    kept = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    if not kept.size:
        return []
    breaks = np.flatnonzero(np.diff(kept) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [kept.size]))
    return [(first_row + int(kept[a]), int(b - a)) for a, b in zip(starts, stops, strict=True)]


def _read_parquet(piece: ReadSlice) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(piece.path)
    groups = list(piece.row_groups)
    if piece.take is None and not piece.skip:
        return parquet.read_row_groups(groups)
    whole = _decoded_group(parquet, piece)
    if whole is not None:
        end = None if piece.take is None else piece.take
        return whole.slice(piece.skip, end)
    # Decode batch by batch and stop after the range: memory stays near one batch.
    end = piece.skip + (piece.take if piece.take is not None else parquet.metadata.num_rows)
    kept, seen = [], 0
    for record_batch in parquet.iter_batches(batch_size=_BATCH_ROWS, row_groups=groups):
        low, high = max(piece.skip - seen, 0), min(end - seen, record_batch.num_rows)
        if high > low:
            kept.append(record_batch.slice(low, high - low))
        seen += record_batch.num_rows
        if seen >= end:
            break
    return pa.Table.from_batches(kept, schema=parquet.schema_arrow)


def _decoded_group(parquet: Any, piece: ReadSlice) -> Any:
    """The slice's row group decoded whole, kept for the next slices of it: a row group
    larger than ``mini_batch_size`` is cut into row ranges, and this process is handed
    them one after another. None when the group is too big to keep (it is then read
    batch by batch up to the slice's end)."""
    if len(piece.row_groups) != 1 or not piece.version:
        return None
    group = piece.row_groups[0]
    key = (piece.name, piece.version, group)
    table = _groups.get(key)
    if table is not None:
        _groups.move_to_end(key)
        return table
    if parquet.metadata.row_group(group).total_byte_size > _GROUP_BYTES_KEPT:
        return None
    table = parquet.read_row_group(group)
    _groups[key] = table
    while len(_groups) > _GROUPS_KEPT:
        _groups.popitem(last=False)
    return table


def _where_mask(table: Any, where: tuple[tuple[str, str | None], ...]) -> Any:
    """Whether each row's key columns, as text, equal ``where``'s values (None: null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = None
    for key, value in where:
        column = pc.cast(table.column(key), pa.string())
        match = pc.is_null(column) if value is None else pc.fill_null(
            pc.equal(column, value), False)
        mask = match if mask is None else pc.and_(mask, match)
    return mask
