"""Folders of this machine read in place, through the read operations of ``BlobStore``.

The local runner's jobs may name folders of the machine they run on (absolute paths)
instead of ``container/prefix``: their files are listed, pinned and read where they are,
never copied into the emulator and out again. Local paths go by the "container" ``LOCAL``
and blob-like names (the file's absolute path, ``/`` separated).

A file's version, its "ETag", is its size with its modification and status-change times:
every write sets the status-change time, and no user call can set it back (``touch`` and
``cp -p`` set only the modification time), so a file written after it was listed fails a
read pinned to the listed version (ConflictError), as a replaced blob does. Two writes of
the same size within one tick of the file system's clock would look alike; nothing else.

Only paths under ``roots`` are read, symbolic links resolved first; a listing refuses a
link that leads out of the folder listed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO

from batchfx.core.errors import ConflictError, InputError, StorageNotFoundError
from batchfx.core.file_refs import (
    LOCAL,
    BlobRef,
    FileStore,
    display_name,
    file_version,
    is_local_path,
)

__all__ = ["LOCAL", "FileStore", "LocalFiles", "display_name", "file_version",
           "is_local_path"]

_CHUNK = 1 << 20


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class LocalFiles:
    """Read-only access to local folders under ``roots`` (none: every local path refused)."""

    def __init__(self, roots: tuple[str, ...]) -> None:
        self.roots = tuple(os.path.realpath(r) for r in roots)

    def allowed(self, path: str, *, resolved: bool = False) -> bool:
        """Whether ``path`` (links resolved, unless it is ``resolved`` already) lies under
        one of the roots."""
        real = path if resolved else os.path.realpath(path)
        return any(_inside(real, root) for root in self.roots)

    def _open(self, container: str, name: str, etag: str | None) -> BinaryIO:
        if container != LOCAL:
            raise ValueError(f"not a local path: {container}/{name}")
        if not self.allowed(name):
            raise InputError(f"{name}: not under a folder this app may read "
                             f"({', '.join(self.roots) or 'none'}; app setting "
                             "BATCHFX_LOCAL_ROOTS)")
        try:
            stream = open(name, "rb")  # noqa: SIM115 (returned to the caller)
        except FileNotFoundError as exc:
            if etag:
                raise ConflictError(f"{name} was removed after it was listed") from exc
            raise StorageNotFoundError(f"{name} does not exist") from exc
        if etag and file_version(os.fstat(stream.fileno())) != etag:
            stream.close()
            raise ConflictError(f"{name} changed after it was listed")
        return stream

    def exists(self, container: str, name: str) -> bool:
        """Whether the file exists (and may be read)."""
        return container == LOCAL and self.allowed(name) and os.path.isfile(name)

    def container_exists(self, name: str) -> bool:
        """Local paths have no containers to create."""
        return name == LOCAL

    def download(self, container: str, name: str, *, offset: int | None = None,
                 length: int | None = None, etag: str | None = None) -> bytes:
        """The file, or ``length`` bytes of it from ``offset``; with ``etag`` only while the
        file is that version (ConflictError otherwise)."""
        with self._open(container, name, etag) as stream:
            stream.seek(offset or 0)
            return stream.read(-1 if length is None else length)

    def download_to_stream(self, container: str, name: str, stream: Any, *,
                           offset: int | None = None, length: int | None = None,
                           etag: str | None = None) -> int:
        """Copy the file (or a range of it) into an open binary stream; returns the bytes."""
        copied = 0
        with self._open(container, name, etag) as source:
            source.seek(offset or 0)
            left = -1 if length is None else length
            while left:
                block = source.read(_CHUNK if left < 0 else min(_CHUNK, left))
                if not block:
                    break
                stream.write(block)
                copied += len(block)
                left = left - len(block) if left > 0 else left
        return copied

    def download_to_file(self, container: str, name: str, path: str) -> None:
        """Copy the file to ``path``, creating its folder."""
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as out:
            self.download_to_stream(container, name, out)

    def list_pages(self, container: str, prefix: str, *, continuation: str | None = None,
                   page_size: int = 5000) -> Iterator[tuple[list[BlobRef], str | None]]:
        """The files under a folder (``prefix`` ending in ``/``) or the one file ``prefix``
        names, in blob listing order, a page at a time with the token resuming after it."""
        top = prefix.rstrip("/") or "/"
        if container != LOCAL or not self.allowed(top):
            roots = ", ".join(self.roots) or "none"
            raise InputError(f"{top}: not a folder this app may read ({roots}; app setting "
                             "BATCHFX_LOCAL_ROOTS)")
        if os.path.isfile(top) and not prefix.endswith("/"):
            names = [top]
        elif os.path.isdir(top):
            names = sorted(_walk(top))
        else:
            names = []
        if continuation:
            names = [n for n in names if n > continuation]
        for start in range(0, len(names), page_size):
            page = names[start:start + page_size]
            refs = [_ref(name) for name in page]
            more = start + page_size < len(names)
            yield [r for r in refs if r is not None], page[-1] if more else None
        if not names:
            yield [], None

    def list_names(self, container: str, prefix: str) -> Iterator[BlobRef]:
        """Every file under a folder."""
        for refs, _ in self.list_pages(container, prefix):
            yield from refs


def _ref(name: str) -> BlobRef | None:
    try:
        st = os.stat(name)
    except FileNotFoundError:  # removed while listing: not an input any more
        return None
    return BlobRef(name, st.st_size, file_version(st))


def _walk(top: str) -> Iterator[str]:
    """Paths of the files under ``top``; links are followed only where they stay inside."""
    real_top = os.path.realpath(top)
    folders = [top]
    while folders:
        folder = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                path = f"{folder.rstrip('/')}/{entry.name}"
                try:
                    path.encode("utf-8")
                except UnicodeEncodeError:  # undecodable bytes, kept as surrogates
                    raise InputError(f"inputs: the file name {os.fsencode(path)!r} is not "
                                     "valid UTF-8, which batchfx's manifests and reports "
                                     "need; rename it") from None
                if entry.is_symlink():
                    target = os.path.realpath(path)
                    if not _inside(target, real_top):
                        raise InputError(
                            f"inputs: {path} is a symbolic link to {target}, outside the "
                            f"folder {top} the job names: a job reads only that folder — "
                            "copy the file in, or name the folder it is in")
                    if os.path.isdir(target):
                        continue  # its files are listed under their own folder
                try:
                    mode = entry.stat().st_mode
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(mode):
                    folders.append(path)
                elif stat.S_ISREG(mode):
                    yield path
