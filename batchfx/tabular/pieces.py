"""The pieces of one tabular input file: what the partitioner packs into mini-batches.

A piece (``cuts.Piece``) is a slice no bigger than the limit (unless one row alone is),
with its weight (bytes or rows), its partition key values and a cursor to resume at it.
Pieces come in file order; with partition keys on columns, group by group within each
block of rows. Parquet files are cut by row groups (``pieces_parquet``), text by lines
(``pieces_text``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from batchfx.tabular import pieces_text
from batchfx.tabular.cuts import FileCut, Piece
from batchfx.tabular.pieces_parquet import parquet_pieces

__all__ = ["FileCut", "Piece", "file_pieces"]


def file_pieces(cut: FileCut, cursor: Mapping[str, int]) -> Iterator[Piece]:
    """The file's pieces from ``cursor`` (a cursor of one of its pieces; {} = the start)."""
    if cut.format == "parquet":
        yield from parquet_pieces(cut, cursor)
        return
    if cut.column_keys:
        yield from pieces_text.grouped_pieces(cut)
    elif cut.limit.rows is not None:
        yield from pieces_text.pieces_by_rows(cut, cursor)
    else:
        yield from pieces_text.pieces_by_bytes(cut, cursor)
