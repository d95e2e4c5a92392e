"""Pieces of a Parquet file: row groups and row ranges, planned from its footer alone
(read through ranged reads); with partition keys on columns, the key columns are read
one row group at a time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from batchfx.core.errors import InputError
from batchfx.core.file_refs import display_name
from batchfx.tabular.cuts import FileCut, Piece
from batchfx.tabular.grouping import chunk_rows, group_rows, text_columns
from batchfx.tabular.parquet import RowGroup, footer_offset, row_groups, split_row_group
from batchfx.tabular.remote import BlobReader
from batchfx.tabular.slices import InputFile, Slice

__all__ = ["open_parquet", "parquet_pieces"]


def open_parquet(cut: FileCut) -> tuple[Any, BlobReader]:
    """A pyarrow ParquetFile over ranged reads of the blob (only the footer is read now)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ref = cut.ref
    reader = BlobReader(cut.read, ref.size)
    try:
        return pq.ParquetFile(reader), reader
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"inputs: {display_name(cut.container, ref.name)} is not a readable "
                         f"Parquet file ({exc}) — check inputs.format and inputs.glob") from exc


def parquet_pieces(cut: FileCut, cursor: Mapping[str, int]) -> Iterator[Piece]:
    """Row groups (split into row ranges when larger than the limit) from piece ``p``."""
    parquet, _ = open_parquet(cut)
    metadata = parquet.metadata
    file = InputFile(cut.ref.name, cut.ref.size, cut.ref.etag,
                     footer=footer_offset(metadata, cut.ref.size))
    groups = row_groups(metadata, cut.ref.size)
    if cut.column_keys:
        yield from _grouped(cut, parquet, file, groups)
        return
    first, ordinal = int(cursor.get("p", 0)), 0
    for group in groups:
        for part in split_row_group(group, cut.limit):
            if ordinal >= first:
                piece = Slice(file, group.start, group.stop, (group.index, group.index + 1),
                              part.skip, part.take, rows=part.rows)
                yield Piece(piece, part.weight, cut.group(), {"p": ordinal})
            ordinal += 1


def _grouped(cut: FileCut, parquet: Any, file: InputFile,
             groups: list[RowGroup]) -> Iterator[Piece]:
    """Per row group: the rows of each key value, in runs of about the limit."""
    keys = cut.column_keys
    names = list(parquet.schema_arrow.names)
    for key in keys:
        if key not in names:
            raise cut.missing_column(key, names)
    for group in groups:
        if group.rows <= 0:
            continue
        try:
            table = parquet.read_row_group(group.index, columns=list(keys))
        except OSError as exc:
            raise InputError(f"inputs: cannot read row group {group.index} of "
                             f"{display_name(cut.container, file.name)} ({exc})") from exc
        weights = None
        if cut.limit.rows is None:
            weights = np.full(group.rows, max(1, group.bytes // group.rows), np.int64)
        for values, rows in group_rows(text_columns(table, keys)):
            where = tuple(zip(keys, values, strict=True))
            for part, weight in chunk_rows(rows, weights, cut.limit.limit):
                skip, take = int(part[0]), int(part[-1] - part[0] + 1)
                whole = skip == 0 and take == group.rows
                piece = Slice(file, group.start, group.stop, (group.index, group.index + 1),
                              skip, None if whole else take, rows=int(part.size), where=where)
                yield Piece(piece, weight, cut.group(where))
