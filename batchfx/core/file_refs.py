"""A job's files, wherever they are: a listed blob or local file (``BlobRef``), the
"container" of local paths (``LOCAL``), the read operations both are read through
(``FileStore``), and how messages name them. Pure: no storage client, no Azure SDK."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LOCAL", "BlobRef", "FileStore", "display_name", "file_version", "is_local_path"]

LOCAL = ""  # the container of local paths


@dataclass(frozen=True)
class BlobRef:
    """One listed blob: enough to download it and to tell whether it changed."""

    name: str
    size: int
    etag: str
    content_md5: str = ""  # set by the service for blobs uploaded in one request


class FileStore(Protocol):
    """The read operations a job's files are read through: ``BlobStore`` or ``LocalFiles``."""

    def exists(self, container: str, name: str) -> bool: ...

    def download(self, container: str, name: str, *, offset: int | None = None,
                 length: int | None = None, etag: str | None = None) -> bytes: ...

    def download_to_stream(self, container: str, name: str, stream: Any, *,
                           offset: int | None = None, length: int | None = None,
                           etag: str | None = None) -> int: ...

    def download_to_file(self, container: str, name: str, path: str) -> None: ...

    def list_pages(self, container: str, prefix: str, *, continuation: str | None = None,
                   page_size: int = 5000) -> Iterator[tuple[list[BlobRef], str | None]]: ...

    def list_names(self, container: str, prefix: str) -> Iterator[BlobRef]: ...


def display_name(container: str, name: str) -> str:
    """How messages name a file: ``container/name``, or a local file's path."""
    return f"{container}/{name}" if container != LOCAL else name


def is_local_path(path: str) -> bool:
    """Whether a spec path names a folder of this machine (absolute) rather than a blob."""
    return path.startswith("/")


def file_version(st: os.stat_result) -> str:
    """A local file's version: size, modification and status-change times."""
    return f"L{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}"
