"""Formatting of the rows a scoring script's run() returned, for the append_row output.

Pure and importable in the script's child process: pandas and pyarrow are imported only
when a format needs them, so a script that never touches them starts fast.

Formats (``output_format`` of the job):
    text     Azure ML's append_row: ``str(element)`` per line; DataFrame rows as their
             values joined by single spaces (header = column names, only when asked).
    csv      rows without header; the header line is returned apart (lists of scalars
             are one column ``result``, lists of dicts take their keys, lists of
             lists/tuples are columns ``c0..cN``).
    jsonl    one JSON value per line (DataFrame rows as objects).
    parquet  each part is a complete Parquet file; ``merge_parquet_parts`` joins them.

``format_segments`` formats the rows in runs (one per input file) and says how many bytes
each run took, so that finalize can cut a part into per-input-file outputs;
``common_header`` refuses mini-batches whose CSV/text headers differ.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from batchfx.core.errors import OutputError
from batchfx.core.script_contract import OUTPUT_FORMATS, is_dataframe

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "OUTPUT_FORMATS",
    "ParquetSink",
    "common_header",
    "format_rows",
    "format_segments",
    "merge_parquet_parts",
]

Rows = list[Any] | tuple[Any, ...]


def format_rows(
    result: Rows | pd.DataFrame, output_format: str, header: bool
) -> tuple[bytes, bytes | None]:
    """Format run()'s result as (part bytes without header, header bytes or None)."""
    if output_format == "text":
        return _text(result, header)
    if output_format == "csv":
        return _csv(result)
    if output_format == "jsonl":
        return _jsonl(result), None
    if output_format == "parquet":
        return _parquet(result), None
    raise ValueError(f"output_format: {output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")


def format_segments(
    result: Rows | pd.DataFrame, output_format: str, header: bool, rows: Sequence[int]
) -> tuple[bytes, bytes | None, list[int]]:
    """Like :func:`format_rows`, and the bytes of each run of ``rows[i]`` consecutive rows
    (zeros for Parquet, whose parts are cut by rows). ``sum(rows)`` must be ``len(result)``."""
    if sum(rows) != len(result):
        raise ValueError(f"rows: {sum(rows)} rows in runs but the result has {len(result)}")
    if output_format == "parquet":
        return _parquet(result), None, [0] * len(rows)
    if output_format == "csv" and not is_dataframe(result) and result:
        columns, values = _table(result)  # the columns of every row, not of each run
        runs = [_csv_rows(values[a:b]) for a, b in _bounds(rows)]
        return b"".join(runs), _csv_line(columns), [len(c) for c in runs]
    chunks: list[bytes] = []
    head: bytes | None = None
    for a, b in _bounds(rows):
        piece = result.iloc[a:b] if is_dataframe(result) else result[a:b]
        chunk, run_head = format_rows(piece, output_format, header)
        chunks.append(chunk)
        head = head or run_head
    if not rows:
        head = format_rows(result, output_format, header)[1]
    return b"".join(chunks), head, [len(c) for c in chunks]


def _bounds(rows: Sequence[int]) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for count in rows:
        bounds.append((start, start + count))
        start += count
    return bounds


def _text(result: Rows | pd.DataFrame, header: bool) -> tuple[bytes, bytes | None]:
    if is_dataframe(result):
        lines = [" ".join(str(v) for v in row) for row in result.itertuples(index=False)]
        head = (" ".join(str(c) for c in result.columns) + "\n").encode() if header else None
        return _join_lines(lines), head
    return _join_lines(str(element) for element in result), None


def _join_lines(lines: Iterable[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


def _table(rows: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """Columns and row values of a list result (see the module docstring)."""
    if rows and all(isinstance(r, Mapping) for r in rows):
        keys = list(dict.fromkeys(k for r in rows for k in r))
        return [str(k) for k in keys], [[r.get(k) for k in keys] for r in rows]
    if rows and all(isinstance(r, list | tuple) for r in rows):
        width = max(len(r) for r in rows)
        values = [[*r, *([None] * (width - len(r)))] for r in rows]
        return [f"c{i}" for i in range(width)], values
    return ["result"], [[r] for r in rows]


def _csv_line(values: Sequence[Any]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode()


def _csv(result: Rows | pd.DataFrame) -> tuple[bytes, bytes | None]:
    if is_dataframe(result):
        head = _csv_line([str(c) for c in result.columns])
        if result.empty:
            return b"", head
        return result.to_csv(index=False, header=False, lineterminator="\n").encode(), head
    if not result:
        return b"", None  # no rows, no columns to name
    columns, values = _table(result)
    return _csv_rows(values), _csv_line(columns)


def _csv_rows(values: Sequence[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(values)
    return buf.getvalue().encode()


def _jsonl(result: Rows | pd.DataFrame) -> bytes:
    if is_dataframe(result):
        if result.empty:
            return b""
        text = result.to_json(
            orient="records",
            lines=True,
            date_format="iso",
            default_handler=str,
            force_ascii=False,
        )
        return (text if text.endswith("\n") else text + "\n").encode()
    return _join_lines(json.dumps(e, default=str, ensure_ascii=False) for e in result)


def _parquet(result: Rows | pd.DataFrame) -> bytes:
    if len(result) == 0:
        return b""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if is_dataframe(result):
        table = pa.Table.from_pandas(result, preserve_index=False)
    elif all(isinstance(r, Mapping) for r in result):
        table = pa.Table.from_pylist([dict(r) for r in result])
    else:
        columns, values = _table(result)
        table = pa.table({c: [row[i] for row in values] for i, c in enumerate(columns)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _describe(schema: Any) -> str:
    return "{" + ", ".join(f"{f.name}: {f.type}" for f in schema) + "}"


class ParquetSink:
    """One Parquet file written from the tables of several mini-batches, which must all
    have the same schema (OutputError names the first mini-batch that differs)."""

    def __init__(self, sink: str | os.PathLike[str] | BinaryIO, what: str = "parquet output"):
        self._sink, self._what = sink, what
        self._writer: Any = None
        self._first_index = -1
        self.rows = 0

    def add(self, index: int, table: Any) -> None:
        """Append a pyarrow table of mini-batch ``index``."""
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self._sink, table.schema)
            self._first_index = index
        elif not table.schema.equals(self._writer.schema, check_metadata=False):
            table = _conform(table, self._writer.schema)
        if not table.schema.equals(self._writer.schema, check_metadata=False):
            raise OutputError(
                f"{self._what}: mini-batch {index} returned columns "
                f"{_describe(table.schema)} but mini-batch {self._first_index} returned "
                f"{_describe(self._writer.schema)}; make run() return the same columns and "
                "types for every mini-batch, or use output_format 'csv' or 'jsonl'"
            )
        self._writer.write_table(table)
        self.rows += table.num_rows

    @property
    def started(self) -> bool:
        """Whether a table was added (the file exists)."""
        return self._writer is not None

    def close(self) -> None:
        """Finish the file (nothing is written when no table was added)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _conform(table: Any, schema: Any) -> Any:
    """``table`` cast to ``schema`` when it differs only by columns that are all null (a
    mini-batch whose predictions were all None has no type for them); else as it is."""
    import pyarrow as pa

    if table.schema.names != schema.names:
        return table
    if any(not (mine.equals(theirs) or pa.types.is_null(mine.type))
           for mine, theirs in zip(table.schema, schema, strict=True)):
        return table
    return table.cast(schema)


def read_parquet_part(data: bytes) -> Any:
    """A part's rows as a pyarrow table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data))


def merge_parquet_parts(
    parts: Iterable[tuple[int, bytes]], sink: str | os.PathLike[str] | BinaryIO
) -> int:
    """Write (mini-batch index, part) pairs into one Parquet file; return the rows written.

    Empty parts are skipped; with no rows at all nothing is written to ``sink``.
    """
    writer = ParquetSink(sink)
    try:
        for index, data in parts:
            if data:
                writer.add(index, read_parquet_part(data))
    finally:
        writer.close()
    return writer.rows


def _columns(header: str, output_format: str) -> list[str]:
    line = header.rstrip("\r\n")
    if output_format == "csv":
        return next(csv.reader([line]), [])
    return line.split(" ")


def common_header(headers: Iterable[tuple[int, str]], output_format: str,
                  what: str = "output") -> str:
    """The header line every (mini-batch index, header) pair shares ('' when none has one).

    Mini-batches without a header (no rows) are skipped; OutputError names the first two
    mini-batches whose columns differ, both column lists and how to fix it.
    """
    first: tuple[int, str] | None = None
    for index, header in headers:
        if not header:
            continue
        if first is None:
            first = (index, header)
        elif header != first[1]:
            raise OutputError(
                f"{output_format} {what}: mini-batch {index} returned columns "
                f"{_columns(header, output_format)} but mini-batch {first[0]} returned "
                f"{_columns(first[1], output_format)}; make run() return the same columns, "
                "in the same order, for every mini-batch (e.g. select them: "
                "frame[[...]]), or use output_format 'jsonl', which needs no header"
            )
    return first[1] if first else ""
