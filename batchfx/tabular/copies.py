"""Sparse local copies of Parquet blobs, kept by a worker process across mini-batches.

Each worker process keeps its own copies in a folder of its own (``copies_folder``): two
processes must never fill one file (each tracks what it fetched), and the folders of
processes gone are removed by the next one.

A row group larger than ``mini_batch_size`` is cut into row ranges, one mini-batch each,
and a worker takes them one after another: downloading the group for each would read it
as many times. A copy holds the byte ranges fetched so far (the footer, row groups) of one
blob version, at its place in a file the blob's size; each mini-batch gets a hard link to
it, so dropping a copy (least recently used first, past ``KEPT_BYTES``) never pulls a
file from under a mini-batch still reading it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["KEPT_BYTES", "SparseCopies", "copies_folder", "union_ranges"]

KEPT_BYTES = 2 * 1024**3

@dataclass
class _Copy:
    path: str
    size: int
    filled: list[tuple[int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def missing(self, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The parts of ``ranges`` not fetched yet."""
        gaps = []
        for start, stop in ranges:
            for low, high in self.filled:
                if low <= start < high:
                    start = high
            if start < stop:
                gaps.append((start, stop))
        return gaps

    def add(self, ranges: list[tuple[int, int]]) -> None:
        self.filled = union_ranges([*self.filled, *ranges])


def union_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte ranges merged where they touch or overlap, in order."""
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


@functools.cache
def copies_folder(work_dir: str, pid: int | None = None) -> str:
    """This worker process's folder of copies (only it writes there), after removing,
    once, those of worker processes of this machine that are gone."""
    root = os.path.join(work_dir, "parquet-copies")
    host = socket.gethostname()
    mine = f"{host}-{pid or os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(root):
            owner, _, other = name.rpartition("-")
            if name != mine and owner == host and other.isdigit() and not _alive(int(other)):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    return os.path.join(root, mine)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process, alive
    return True


class SparseCopies:
    """The copies of one worker process, in ``folder``."""

    def __init__(self, folder: str, kept_bytes: int = KEPT_BYTES) -> None:
        self.folder, self.kept_bytes = folder, kept_bytes
        self._copies: OrderedDict[tuple[str, str, str], _Copy] = OrderedDict()
        self._lock = threading.Lock()

    def link(self, key: tuple[str, str, str], size: int, ranges: list[tuple[int, int]],
             fetch: Callable[[str, list[tuple[int, int]]], None], target: str) -> None:
        """Make ``target`` a hard link to the copy of blob ``key`` (container, name,
        ETag) of ``size`` bytes, once ``ranges`` of it are there (``fetch(path, gaps)``
        downloads those missing into the file at ``path``)."""
        with self._lock:
            copy = self._copies.get(key)
            if copy is None or not os.path.exists(copy.path):
                name = hashlib.sha256("\n".join(key).encode()).hexdigest()[:32]
                os.makedirs(self.folder, exist_ok=True)
                copy = self._copies[key] = _Copy(os.path.join(self.folder, f"{name}.parquet"),
                                                 size)
                with open(copy.path, "wb") as stream:
                    stream.truncate(size)  # sparse: bytes not fetched take no disk space
            self._copies.move_to_end(key)
            self._evict()
        with copy.lock:
            gaps = copy.missing(union_ranges(ranges))
            if gaps:
                fetch(copy.path, gaps)
                copy.add(gaps)
            os.link(copy.path, target)

    def _evict(self) -> None:
        """Drop the least recently used copies past ``kept_bytes`` (fetched bytes), but
        the newest and any being filled."""
        held = sum(sum(b - a for a, b in c.filled) for c in self._copies.values())
        for key in list(self._copies)[:-1]:
            if held <= self.kept_bytes:
                return
            copy = self._copies[key]
            if copy.lock.locked():
                continue
            del self._copies[key]
            held -= sum(b - a for a, b in copy.filled)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(copy.path)  # mini-batches still reading it hold their links
