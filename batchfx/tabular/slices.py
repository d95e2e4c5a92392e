"""What a tabular mini-batch holds: slices of input files, and their manifest wire form.

A slice is a byte range of a CSV/JSON-lines file cut at line boundaries, or a range of
Parquet row groups (optionally a row range inside one row group). ``where`` keeps only
the rows whose partition key columns have the given text values. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["InputFile", "Slice", "merge_slices", "slice_from_wire", "slice_to_wire"]

Where = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class InputFile:
    """One input blob as partitioned (its ETag guards every later ranged read)."""

    name: str
    size: int
    etag: str
    header: int = 0  # CSV: bytes of the header line, prepended to slices that start later
    footer: int = 0  # Parquet: offset of the footer (file metadata, its length, "PAR1")

    def to_wire(self) -> list[Any]:
        """The JSON form used in manifest lines."""
        return [self.name, self.size, self.etag, self.header, self.footer]

    @classmethod
    def from_wire(cls, data: list[Any]) -> InputFile:
        """Read back :meth:`to_wire`."""
        name, size, etag, header, footer = data
        return cls(str(name), int(size), str(etag), int(header), int(footer))


@dataclass(frozen=True)
class Slice:
    """Part of one input file: bytes ``[start, stop)``, and for Parquet the row groups
    ``row_groups`` (first, last + 1) of which rows ``skip`` .. ``skip + take`` are kept."""

    file: InputFile
    start: int
    stop: int
    row_groups: tuple[int, int] | None = None
    skip: int = 0
    take: int | None = None
    rows: int | None = None  # exact row count when known (Parquet, counted text)
    estimate: int = 0  # estimated rows when ``rows`` is unknown (text cut by bytes)
    where: Where = ()

    @property
    def planned_rows(self) -> int:
        """Rows as far as the partitioner knows: exact, else estimated."""
        return self.rows if self.rows is not None else self.estimate

    @property
    def size(self) -> int:
        """Bytes this slice covers."""
        return self.stop - self.start

    def describe(self) -> str:
        """``name#what``: how reports name the slice, e.g. ``in/a.csv#bytes=0-1048576``."""
        if self.row_groups is None:
            what = f"bytes={self.start}-{self.stop}"
        elif self.take is not None:
            what = f"row_group={self.row_groups[0]}&rows={self.skip}-{self.skip + self.take}"
        else:
            what = f"row_groups={self.row_groups[0]}-{self.row_groups[1]}"
        keys = "".join(f"&{k}={'' if v is None else v}" for k, v in self.where)
        return f"{self.file.name}#{what}{keys}"


def merge_slices(first: Slice, second: Slice) -> Slice | None:
    """One slice for two adjacent ones of the same file, or None when they are not adjacent."""
    if first.file != second.file or first.where != second.where:
        return None
    rows = None if first.rows is None or second.rows is None else first.rows + second.rows
    estimate = first.planned_rows + second.planned_rows if rows is None else 0
    if first.row_groups is None and second.row_groups is None:
        if first.stop != second.start:
            return None
        return replace(first, stop=second.stop, rows=rows, estimate=estimate)
    whole = first.take is None and second.take is None and not first.skip and not second.skip
    if first.row_groups is None or second.row_groups is None or not whole:
        return None
    if first.row_groups[1] != second.row_groups[0]:
        return None
    groups = (first.row_groups[0], second.row_groups[1])
    return replace(first, start=min(first.start, second.start), stop=max(first.stop, second.stop),
                   row_groups=groups, rows=rows, estimate=estimate)


def slice_to_wire(piece: Slice, file_index: int) -> dict[str, Any]:
    """The JSON form of a slice in a manifest line (defaults left out)."""
    body: dict[str, Any] = {"f": file_index, "s": piece.start, "e": piece.stop}
    if piece.row_groups is not None:
        body["rg"] = list(piece.row_groups)
    if piece.skip:
        body["skip"] = piece.skip
    if piece.take is not None:
        body["take"] = piece.take
    if piece.rows is not None:
        body["rows"] = piece.rows
    else:
        body["est"] = piece.estimate
    if piece.where:
        body["where"] = [list(pair) for pair in piece.where]
    return body


def slice_from_wire(body: dict[str, Any], files: list[InputFile]) -> Slice:
    """Read back :func:`slice_to_wire`."""
    groups = body.get("rg")
    return Slice(
        file=files[int(body["f"])],
        start=int(body["s"]),
        stop=int(body["e"]),
        row_groups=(int(groups[0]), int(groups[1])) if groups is not None else None,
        skip=int(body.get("skip", 0)),
        take=int(body["take"]) if body.get("take") is not None else None,
        rows=int(body["rows"]) if body.get("rows") is not None else None,
        estimate=int(body.get("est", 0)),
        where=tuple((str(k), None if v is None else str(v)) for k, v in body.get("where", [])),
    )
