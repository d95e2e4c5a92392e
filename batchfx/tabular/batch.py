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
    name: str = ""  # the input blob as partitioned (container-relative), for row sources
    # 0-based row of the file at the slice's first row (after ``skip``, before ``where``);
    # None where unknown: CSV/JSON lines cut after the file's first line.
    first_row: int | None = None
    version: str = ""  # the input's version (ETag) as partitioned: with ``name``, its identity


@dataclass(frozen=True)
class TabularBatch:
    """A tabular mini-batch: ``run()`` receives its slices as one DataFrame, in order."""

    format: str  # csv | jsonl | parquet
    slices: tuple[ReadSlice, ...]
    rows: int  # rows as planned (exact, or estimated for text cut by bytes)
    # Rows [start, stop) of the mini-batch only (stop None: to the end), used when a failed
    # mini-batch is split to isolate its bad rows; None = every row.
    window: tuple[int, int | None] | None = None
