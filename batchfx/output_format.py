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
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from batchfx.errors import OutputError
from batchfx.scoring.contract import OUTPUT_FORMATS, is_dataframe

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["OUTPUT_FORMATS", "format_rows", "merge_parquet_parts"]

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
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(values)
    return buf.getvalue().encode(), _csv_line(columns)


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


def merge_parquet_parts(
    parts: Iterable[tuple[int, bytes]], sink: str | os.PathLike[str] | BinaryIO
) -> int:
    """Write (mini-batch index, part) pairs into one Parquet file; return the rows written.

    Empty parts are skipped; with no rows at all nothing is written to ``sink``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: Any = None
    first_index = -1
    rows = 0
    try:
        for index, data in parts:
            if not data:
                continue
            table = pq.read_table(pa.BufferReader(data))
            if writer is None:
                writer = pq.ParquetWriter(sink, table.schema)
                first_index = index
            elif not table.schema.equals(writer.schema, check_metadata=False):
                raise OutputError(
                    f"parquet output: mini-batch {index} returned columns "
                    f"{_describe(table.schema)} but mini-batch {first_index} returned "
                    f"{_describe(writer.schema)}; make run() return the same columns and "
                    "types for every mini-batch, or use output_format 'csv' or 'jsonl'"
                )
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows
