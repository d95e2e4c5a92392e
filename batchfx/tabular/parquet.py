"""Row groups of a Parquet file, from its footer, and how they split into pieces. Pure.

A row group no bigger than the limit is one piece; a larger one is split into row
ranges of about the limit. Reading a row range still decodes its row group from the
start (Parquet has no row-level seek without a page index), so row groups near
``mini_batch_size`` read best.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from batchfx.core.sizes import MiniBatchSize

__all__ = ["RowGroup", "RowRange", "footer_offset", "row_groups", "split_row_group"]

_MAGIC = 4  # "PAR1" at the start of the file


@dataclass(frozen=True)
class RowGroup:
    """One row group: its rows and the byte range of its column chunks."""

    index: int
    rows: int
    start: int
    stop: int

    @property
    def bytes(self) -> int:
        """Compressed bytes on disk (what a byte limit counts)."""
        return self.stop - self.start


@dataclass(frozen=True)
class RowRange:
    """Rows ``skip`` .. ``skip + take`` of a row group (``take`` None: all of it)."""

    skip: int
    take: int | None
    rows: int
    weight: int


def footer_offset(metadata: Any, size: int) -> int:
    """Where the footer starts: the metadata, its 4-byte length and the closing "PAR1"."""
    return size - 8 - int(metadata.serialized_size)


def _chunk_range(column: Any) -> tuple[int, int]:
    data = int(column.data_page_offset)
    start = data
    # Some writers leave dictionary_page_offset 0 when there is none.
    if column.has_dictionary_page and column.dictionary_page_offset:
        start = min(start, int(column.dictionary_page_offset))
    return start, start + int(column.total_compressed_size)


def row_groups(metadata: Any, size: int) -> list[RowGroup]:
    """Every row group with the bytes its column chunks span."""
    footer = footer_offset(metadata, size)
    groups: list[RowGroup] = []
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        ranges = [_chunk_range(group.column(c)) for c in range(group.num_columns)]
        start = min((r[0] for r in ranges), default=_MAGIC)
        stop = max((r[1] for r in ranges), default=_MAGIC)
        if not _MAGIC <= start <= stop <= footer:
            start, stop = _MAGIC, footer  # offsets we do not understand: take every byte
        groups.append(RowGroup(index, int(group.num_rows), start, stop))
    return groups


def split_row_group(group: RowGroup, limit: MiniBatchSize) -> Iterator[RowRange]:
    """The row group whole when it fits the limit, else row ranges of about the limit."""
    if group.rows <= 0:
        return
    if limit.rows is not None:
        parts = -(-group.rows // limit.rows)
        step = limit.rows
    else:
        assert limit.bytes is not None
        parts = max(1, -(-group.bytes // limit.bytes))
        step = -(-group.rows // parts)
    if parts == 1:
        yield RowRange(0, None, group.rows, group.rows if limit.rows else group.bytes)
        return
    for skip in range(0, group.rows, step):
        take = min(step, group.rows - skip)
        weight = take if limit.rows else max(1, group.bytes * take // group.rows)
        yield RowRange(skip, take, take, weight)
