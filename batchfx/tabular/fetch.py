"""The scorer's side: download only a tabular mini-batch's slices, as local files.

CSV and JSON-lines slices become one small file each (a CSV slice that starts after the
header gets the header line first). Parquet slices of one file share a sparse local copy
holding just their row groups and the footer, so pyarrow reads it as a normal file.
Every range is read from the blob version (ETag) that was partitioned. Each slice is
given its blob name and, where known, the file row of its first row (Parquet: from the
local footer; text: only at the top of the file), for the reader's row sources.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from batchfx.core.errors import ConflictError
from batchfx.core.file_refs import LOCAL, FileStore, file_version
from batchfx.core.packing import TabularLine
from batchfx.tabular.batch import ReadSlice, TabularBatch
from batchfx.tabular.copies import SparseCopies, union_ranges
from batchfx.tabular.remote import changed_input, read_range, reads
from batchfx.tabular.slices import InputFile, Slice

__all__ = ["fetch_batch"]


def fetch_batch(blobs: FileStore, container: str, line: TabularLine, dest: str,
                copies_dir: str | None = None) -> TabularBatch:
    """Download the slices of ``line`` into ``dest``; InputError if an input changed.

    Local Parquet files are read in place; Parquet blobs through sparse copies kept in
    ``copies_dir`` across mini-batches (each range fetched once), when given."""
    os.makedirs(dest, exist_ok=True)
    tasks: list[Callable[[], None]] = []
    read: list[ReadSlice] = []
    copies: dict[InputFile, tuple[str, list[tuple[int, int]]]] = {}
    headers: dict[InputFile, bytes] = {}
    kept = _kept(copies_dir) if copies_dir is not None else None
    for number, piece in enumerate(line.slices):
        if line.format == "parquet":
            assert piece.row_groups is not None
            path, ranges = copies.setdefault(
                piece.file, (os.path.join(dest, f"file-{len(copies):04d}.parquet"), []))
            ranges.append((piece.start, piece.stop))
            read.append(ReadSlice(path, tuple(range(*piece.row_groups)), piece.skip, piece.take,
                                  piece.where, piece.file.name, version=piece.file.etag))
            continue
        path = os.path.join(dest, f"slice-{number:04d}.{line.format}")
        header = b""
        if line.format == "csv" and piece.start > 0:
            if piece.file not in headers:
                headers[piece.file] = _csv_header(blobs, container, piece.file)
            header = headers[piece.file]
        tasks.append(partial(_text_slice, blobs, container, piece, header, path))
        # Rows of a text slice are numbered only from the file's top: counting the lines
        # before a later cut would mean downloading the file up to it.
        first = 0 if piece.start <= piece.file.header else None
        read.append(ReadSlice(path, where=piece.where, name=piece.file.name, first_row=first))
    for file, (path, ranges) in copies.items():
        wanted = union_ranges([*ranges, (file.footer, file.size)])
        if container == LOCAL:  # read in place: the version listed, or InputError
            read = [replace(r, path=file.name) if r.path == path else r for r in read]
            _check_local(file)
        elif kept is not None:
            kept.link((container, file.name, file.etag), file.size, wanted,
                      partial(_fill, blobs, container, file), path)
        else:
            with open(path, "wb") as stream:
                stream.truncate(file.size)  # sparse: the bytes not fetched take no space
            tasks += [partial(_into, blobs, container, file, path, start, stop)
                      for start, stop in wanted]
    list(reads().map(lambda task: task(), tasks))
    if copies:
        read = _with_first_rows(read)
    return TabularBatch(line.format, tuple(read), line.estimate)


# A CSV file's header line by (store, container, name, ETag): a big file is cut into many
# mini-batches and a worker takes several of each, so the header is read once per process.
_headers: dict[tuple[int, str, str, str], bytes] = {}
_HEADERS_KEPT = 1024


def _csv_header(blobs: FileStore, container: str, file: InputFile) -> bytes:
    key = (id(blobs), container, file.name, file.etag)
    header = _headers.get(key) if file.etag else None
    if header is None:
        header = read_range(blobs, container, file.name, file.etag, 0, file.header)
        if file.etag:
            if len(_headers) >= _HEADERS_KEPT:
                _headers.clear()
            _headers[key] = header
    return header


def _with_first_rows(read: list[ReadSlice]) -> list[ReadSlice]:
    """Parquet slices with the file row of their first row, from the local copy's footer."""
    import pyarrow.parquet as pq

    starts: dict[str, list[int]] = {}
    for piece in read:
        if piece.path not in starts:
            metadata = pq.read_metadata(piece.path)
            counts = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
            starts[piece.path] = [0, *itertools.accumulate(counts)]
    return [replace(piece, first_row=starts[piece.path][piece.row_groups[0]] + piece.skip)
            if piece.row_groups else replace(piece, first_row=0) for piece in read]


_kept_copies: dict[str, SparseCopies] = {}


def _kept(folder: str) -> SparseCopies:
    if folder not in _kept_copies:
        _kept_copies[folder] = SparseCopies(folder)
    return _kept_copies[folder]


def _fill(blobs: FileStore, container: str, file: InputFile, path: str,
          gaps: list[tuple[int, int]]) -> None:
    list(reads().map(lambda gap: _into(blobs, container, file, path, *gap), gaps))


def _check_local(file: InputFile) -> None:
    try:
        version = file_version(os.stat(file.name))
    except FileNotFoundError:
        version = "removed"
    if version != file.etag:
        raise changed_input(LOCAL, file.name, file.etag)


def _text_slice(blobs: FileStore, container: str, piece: Slice, header: bytes,
                path: str) -> None:
    with open(path, "wb") as stream:
        stream.write(header)
        _download(blobs, container, piece.file, stream, piece.start, piece.stop)


def _into(blobs: FileStore, container: str, file: InputFile, path: str, start: int,
          stop: int) -> None:
    with open(path, "r+b") as stream:
        stream.seek(start)
        _download(blobs, container, file, stream, start, stop)


def _download(blobs: FileStore, container: str, file: InputFile, stream: object, start: int,
              stop: int) -> None:
    if stop <= start:
        return
    try:
        blobs.download_to_stream(container, file.name, stream, offset=start,
                                 length=stop - start, etag=file.etag or None)
    except ConflictError as exc:
        raise changed_input(container, file.name, file.etag) from exc
