"""The partition activity's loop for tabular inputs: files → pieces → packed pages.

A page of mini-batches closes after ``per_page`` mini-batches, or at the end of a listing
page. Without partition keys a page may close inside a file: the cursor names the piece
to resume at, so a file of any size is cut over as many activity calls as it takes.
With partition keys the open mini-batches of every key value would be lost that way, so
pages close only between files: one file is cut within one call (grouped by key values
in bounded memory per block, but its pieces are kept until its page is written).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Hashable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from batchfx.core.errors import InputError
from batchfx.core.file_refs import BlobRef, FileStore, display_name
from batchfx.core.packing import PER_PAGE, Packer, folder_values, select_files
from batchfx.core.sizes import MiniBatchSize
from batchfx.tabular.grouping import Group
from batchfx.tabular.pieces import FileCut, Piece, file_pieces
from batchfx.tabular.remote import RangeRead, blob_ranges, reads
from batchfx.tabular.slices import InputFile, Slice, merge_slices, slice_to_wire

__all__ = ["PER_PAGE", "PlannedBatch", "PlannedPage", "TabularInputs", "line_body", "plan_pages"]

AHEAD = 16  # files whose first bytes (CSV header, Parquet footer) are read ahead
FIRST_READ = 64 * 1024


@dataclass(frozen=True)
class TabularInputs:
    """What to partition: the listed folder (or the one file), format, limit and keys."""

    blobs: FileStore
    container: str
    prefix: str
    format: str
    limit: MiniBatchSize
    keys: tuple[str, ...] = ()
    glob: str | None = None
    single: BlobRef | None = None  # the path names one file


@dataclass(frozen=True)
class PlannedBatch:
    """One mini-batch: its key values (None without keys) and slices in input order."""

    group: Group | None
    slices: list[Slice]


@dataclass(frozen=True)
class PlannedPage:
    """Mini-batches to write as one manifest page, and where partitioning stands after."""

    batches: list[PlannedBatch]
    continuation: str  # the listing token to save
    cursor: dict[str, Any] | None  # where to resume inside that listing page; None = after it


def _batches(closed: list[tuple[Hashable, list[Piece]]]) -> list[PlannedBatch]:
    out: list[PlannedBatch] = []
    for group, pieces in closed:
        assert group is None or isinstance(group, tuple)
        out.append(PlannedBatch(group, [p.slice for p in pieces]))
    return out


def _listing(inputs: TabularInputs, continuation: str) -> Iterator[tuple[list[BlobRef], str]]:
    if inputs.single is not None:
        yield [inputs.single], ""
        return
    prefix = f"{inputs.prefix}/" if inputs.prefix else ""
    for refs, token in inputs.blobs.list_pages(inputs.container, prefix,
                                               continuation=continuation or None):
        yield refs, token or ""


def _files(inputs: TabularInputs, refs: list[BlobRef]) -> list[BlobRef]:
    if inputs.single is not None:
        return [r for r in refs if r.size > 0]
    return [r for r in select_files(refs, inputs.prefix, inputs.glob) if r.size > 0]


class _Primed:
    """Ranged reads of one file whose first read (started early) is served from memory."""

    def __init__(self, read: RangeRead, offset: int, length: int) -> None:
        self._read, self._offset = read, offset
        self._first: Future[bytes] | None = reads().submit(read, offset, length)

    def __call__(self, offset: int, length: int) -> bytes:
        if self._first is not None:
            data = self._first.result()
            if self._offset <= offset and offset + length <= self._offset + len(data):
                start = offset - self._offset
                return data[start : start + length]
        return self._read(offset, length)

    def cancel(self) -> None:
        if self._first is not None:
            self._first.cancel()


def _cut(inputs: TabularInputs, ref: BlobRef) -> tuple[FileCut, _Primed]:
    base = f"{inputs.prefix}/" if inputs.prefix and inputs.single is None else ""
    folders = folder_values(ref.name[len(base):]) if inputs.keys else {}
    folder = {k: v for k, v in folders.items() if k in inputs.keys}
    first = min(ref.size, FIRST_READ)
    # The first read of a file is its head (CSV header, a sample), or its footer.
    offset = ref.size - first if inputs.format == "parquet" else 0
    read = _Primed(blob_ranges(inputs.blobs, inputs.container, ref.name, ref.etag), offset,
                   first)
    cut = FileCut(read, inputs.container, ref, inputs.format, inputs.limit, inputs.keys, folder)
    return cut, read


def _cuts(inputs: TabularInputs, files: Iterable[BlobRef]) -> Iterator[FileCut]:
    """A cut per file, the first bytes of the next ``AHEAD`` files being read meanwhile."""
    ahead: deque[tuple[FileCut, _Primed]] = deque()
    remaining = iter(files)
    try:
        while True:
            while len(ahead) < AHEAD and (ref := next(remaining, None)) is not None:
                ahead.append(_cut(inputs, ref))
            if not ahead:
                return
            yield ahead.popleft()[0]
    finally:
        for _, primed in ahead:
            primed.cancel()


def plan_pages(inputs: TabularInputs, continuation: str, cursor: dict[str, Any] | None,
               *, per_page: int = PER_PAGE) -> Generator[PlannedPage, None, None]:
    """Pages of mini-batches from the saved position (listing token and cursor) on."""
    grouped = bool(inputs.keys)
    for refs, token in _listing(inputs, continuation):
        files = _files(inputs, refs)
        if cursor is not None:
            names = [f.name for f in files]
            if cursor["name"] not in names:
                where = display_name(inputs.container, cursor["name"])
                raise InputError(f"inputs: {where} disappeared while the job was being "
                                 "partitioned; submit the job again")
            files = files[names.index(cursor["name"]):]
        packer: Packer[Piece] = Packer(inputs.limit.limit)
        batches: list[PlannedBatch] = []
        for position, cut in enumerate(_cuts(inputs, files)):
            ref = cut.ref
            at = cursor["at"] if cursor is not None and position == 0 else {}
            for piece in file_pieces(cut, at):
                batches += _batches(packer.add(piece, piece.weight, piece.group))
                if not grouped and len(batches) >= per_page:
                    packer.drop(piece.group)  # it holds only this piece: resume at it
                    yield PlannedPage(batches, continuation, {"name": ref.name,
                                                              "at": piece.cursor})
                    batches = []
                    packer.add(piece, piece.weight, piece.group)
            if grouped and len(batches) >= per_page and position + 1 < len(files):
                batches += _batches(packer.flush())
                yield PlannedPage(batches, continuation, {"name": files[position + 1].name,
                                                          "at": {}})
                batches = []
        cursor = None
        yield PlannedPage(batches + _batches(packer.flush()), token, None)
        continuation = token
        if not token:
            return


def line_body(inputs: TabularInputs, batch: PlannedBatch) -> tuple[dict[str, Any], int]:
    """The manifest line of a mini-batch (without its index) and its planned rows."""
    merged: list[Slice] = []
    for piece in batch.slices:
        joined = merge_slices(merged[-1], piece) if merged else None
        if joined is not None:
            merged[-1] = joined
        else:
            merged.append(piece)
    files: dict[InputFile, int] = {}
    for piece in merged:
        files.setdefault(piece.file, len(files))
    known = all(s.rows is not None for s in merged)
    estimate = sum(s.planned_rows for s in merged)
    body: dict[str, Any] = {
        "container": inputs.container,
        "prefix": inputs.prefix,
        "format": inputs.format,
        "files": [f.to_wire() for f in files],
        "slices": [slice_to_wire(s, files[s.file]) for s in merged],
        "rows": estimate if known else None,
        "estimate": estimate,
    }
    if batch.group is not None:
        body["partition_key_value"] = dict(zip(inputs.keys, batch.group, strict=True))
    return body, estimate
