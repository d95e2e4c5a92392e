"""What the scoring child process gets for a tabular mini-batch: local slice files and how
to read them (picklable, small: the rows themselves never cross the pipe). Pure."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReadSlice", "TabularBatch"]


@dataclass(frozen=True)
class ReadSlice:
    """One local file holding a slice: CSV (header included) or JSON lines, or a sparse
    copy of a Parquet file with the slice's row groups and the footer in place."""

    path: str
    row_groups: tuple[int, ...] = ()  # Parquet: the row groups to read
    skip: int = 0  # rows to skip first (a row range inside one row group)
    take: int | None = None  # rows to keep after ``skip``; None = all
    where: tuple[tuple[str, str | None], ...] = ()  # keep rows whose key columns have these


@dataclass(frozen=True)
class TabularBatch:
    """A tabular mini-batch: ``run()`` receives its slices as one DataFrame, in order."""

    format: str  # csv | jsonl | parquet
    slices: tuple[ReadSlice, ...]
    rows: int  # rows as planned (exact, or estimated for text cut by bytes)
