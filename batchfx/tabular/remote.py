"""Reading input blobs piecemeal: a seekable file over ranged reads, and streamed chunks.

Everything here works on a ``RangeRead``, a function ``(offset, length) -> bytes`` over
one file: :func:`blob_ranges` binds it to a blob version (ETag) listed at partitioning,
so a file replaced meanwhile fails loudly; tests pass a function over bytes. pyarrow
reads a Parquet footer and single column chunks through :class:`BlobReader`, so the
partitioner never downloads a whole Parquet file.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from batchfx.core.errors import ConflictError, InputError
from batchfx.core.file_refs import FileStore, display_name

__all__ = ["BlobReader", "RangeRead", "blob_ranges", "changed_input", "read_range", "reads",
           "stream_chunks"]

T = TypeVar("T")
RangeRead = Callable[[int, int], bytes]
_READ_THREADS = 8
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def reads() -> ThreadPoolExecutor:
    """One pool per process for concurrent ranged reads (probes, prefetch, footers)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="batchfx-ranges")
        return _pool


def changed_input(container: str, name: str, etag: str) -> InputError:
    """The error for an input replaced after the job listed it."""
    return InputError(f"inputs: {display_name(container, name)} changed after the job listed it "
                      f"(version was {etag}); submit the job again once the inputs stop "
                      "changing")


def read_range(blobs: FileStore, container: str, name: str, etag: str, offset: int,
               length: int) -> bytes:
    """``length`` bytes from ``offset`` of that version of the blob (InputError if replaced)."""
    if length <= 0:
        return b""
    try:
        return blobs.download(container, name, offset=offset, length=length, etag=etag or None)
    except ConflictError as exc:
        raise changed_input(container, name, etag) from exc


def blob_ranges(blobs: FileStore, container: str, name: str, etag: str) -> RangeRead:
    """Ranged reads of one blob version."""
    return partial(read_range, blobs, container, name, etag)


class BlobReader(io.RawIOBase):
    """A read-only, seekable binary file over ranged reads of one file."""

    def __init__(self, read: RangeRead, size: int, *, read_ahead: int = 64 * 1024) -> None:
        super().__init__()
        self._read, self.size, self._read_ahead = read, size, read_ahead
        self._position = 0
        self._buffer, self._buffer_at = b"", 0
        self.bytes_read = 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.size - self._position)
        if want <= 0:
            return 0
        start = self._position - self._buffer_at
        if not (start >= 0 and start + want <= len(self._buffer)):
            # Small reads (page headers, the footer's length) fetch a little ahead.
            length = min(max(want, self._read_ahead), self.size - self._position)
            self._buffer = self._read(self._position, length)
            self._buffer_at, start = self._position, 0
            self.bytes_read += len(self._buffer)
            self.requests += 1
        memoryview(buffer)[:want] = self._buffer[start : start + want]
        self._position += want
        return want


def stream_chunks(read: RangeRead, start: int, stop: int,
                  chunk: int = 8 * 1024 * 1024) -> Iterator[bytes]:
    """The bytes ``[start, stop)`` in chunks, the next one read while this one is used."""

    def fetch(offset: int) -> bytes:
        return read(offset, min(chunk, stop - offset))

    yield from _prefetched(fetch, range(start, stop, chunk))


def _prefetched(fetch: Callable[[int], T], offsets: range) -> Iterator[T]:
    pending: Future[T] | None = None
    try:
        for offset in offsets:
            upcoming = reads().submit(fetch, offset)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()
            pending = None
    finally:
        if pending is not None:
            pending.cancel()
