"""What the partitioner cuts a tabular input file into: how to cut one file (``FileCut``)
and the pieces it yields (``Piece``), each a slice with its weight, partition key values and
a cursor to resume at it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from batchfx.core.errors import InputError
from batchfx.core.file_refs import BlobRef, display_name
from batchfx.core.sizes import MiniBatchSize
from batchfx.tabular.grouping import Group
from batchfx.tabular.remote import RangeRead
from batchfx.tabular.slices import Slice, Where

__all__ = ["FileCut", "Piece"]


@dataclass(frozen=True)
class Piece:
    """One slice to pack, its weight against the limit and where to resume at it."""

    slice: Slice
    weight: int
    group: Group | None
    cursor: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FileCut:
    """How to cut one input file: how to read it, its format, limit and partition keys."""

    read: RangeRead  # ranged reads of the listed version of the file
    container: str  # where it is, for messages
    ref: BlobRef
    format: str
    limit: MiniBatchSize
    keys: tuple[str, ...] = ()
    folder: Mapping[str, str] = field(default_factory=dict)  # key=value folders of the file

    @property
    def column_keys(self) -> tuple[str, ...]:
        """Partition keys read from the rows (those not given by the file's folders)."""
        return tuple(k for k in self.keys if k not in self.folder)

    @property
    def csv(self) -> bool:
        """Whether the file is CSV (a header line, quotes to check)."""
        return self.format == "csv"

    def group(self, where: Where = ()) -> Group | None:
        """The full key values of rows with these column values (None without keys)."""
        if not self.keys:
            return None
        columns = dict(where)
        return tuple(self.folder[k] if k in self.folder else columns[k] for k in self.keys)

    def odd_quotes(self, offset: int | None) -> None:
        """Refuse a CSV whose line at ``offset`` shows a line break inside a quoted field."""
        if offset is None:
            return
        raise InputError(
            f"inputs: {display_name(self.container, self.ref.name)} has a line with an "
            f"unbalanced quote near byte {offset}: a quoted CSV field holds a line break, and "
            "CSV inputs are cut at line breaks — write the file without line breaks inside "
            "fields, or use Parquet or JSON lines")

    def missing_column(self, key: str, columns: list[str]) -> InputError:
        """The error for a partition key that is neither a folder nor a column of the file."""
        shown = ", ".join(columns[:20]) + (", …" if len(columns) > 20 else "")
        return InputError(
            f"partition_keys: {key!r} is neither a key=value folder of "
            f"{display_name(self.container, self.ref.name)} nor one of its columns ({shown}) — "
            "name a column or a folder key")
