"""Blob storage: the only place batchfx calls azure-storage-blob."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobServiceClient,
    ContainerClient,
    ExponentialRetry,
)

from batchfx.core.errors import StorageNotFoundError
from batchfx.core.file_refs import BlobRef
from batchfx.core.settings import Settings
from batchfx.storage.clients import (
    BackoffRetry,
    client_transport,
    credential_for,
    sdk_errors,
    service_url,
)

__all__ = ["BlobRef", "BlobStore", "BlockWriter"]

logger = logging.getLogger(__name__)

_BLOCK_SIZE = 8 * 1024 * 1024


class BlobRetry(BackoffRetry, ExponentialRetry):
    """The blob SDK's retry policy on the schedule of the ``storage_retry_*`` settings."""


class BlobStore:
    """Blob operations batchfx needs, with SDK errors turned into batchfx errors."""

    def __init__(self, service: BlobServiceClient, data: BlobServiceClient | None = None,
                 is_app_container: Callable[[str], bool] = lambda name: True) -> None:
        self._service, self._data, self._is_app = service, data, is_app_container

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        """Connect with the connection string, or with a managed identity; job data in an
        account of its own when the settings name one (``BATCHFX_DATA_ACCOUNT``)."""
        def options() -> dict[str, Any]:
            return {"retry_policy": BlobRetry.from_settings(settings),
                    "transport": client_transport()}

        if settings.connection_string:
            service = BlobServiceClient.from_connection_string(settings.connection_string,
                                                               **options())
        else:
            service = BlobServiceClient(service_url(settings, "blob"),
                                        credential=credential_for(settings), **options())
        data = None
        if settings.data_connection_string:
            data = BlobServiceClient.from_connection_string(settings.data_connection_string,
                                                            **options())
        elif settings.data_account:
            data = BlobServiceClient(f"https://{settings.data_account}.blob.core.windows.net",
                                     credential=credential_for(settings), **options())
        return cls(service, data, settings.is_app_container)

    def _service_for(self, container: str) -> BlobServiceClient:
        """The account ``container`` is in: the app's, or the data account."""
        if self._data is None or self._is_app(container):
            return self._service
        return self._data

    def _container(self, name: str) -> ContainerClient:
        return self._service_for(name).get_container_client(name)

    def _blob(self, container: str, name: str) -> BlobClient:
        return self._service_for(container).get_blob_client(container, name)

    def url(self, container: str, name: str) -> str:
        """The blob's URL (as an Event Grid event names it)."""
        return str(self._blob(container, name).url)

    def ensure_container(self, name: str) -> None:
        """Create the container if it does not exist."""
        client = self._container(name)
        # Another worker may create it between the check and the call: that is fine.
        with sdk_errors(f"creating container {name!r}"), suppress(ResourceExistsError):
            if not client.exists():
                client.create_container()

    def container_exists(self, name: str) -> bool:
        """Whether the container exists."""
        with sdk_errors(f"checking container {name!r}"):
            return bool(self._container(name).exists())

    def exists(self, container: str, name: str) -> bool:
        """Whether the blob exists."""
        with sdk_errors(f"checking blob {container}/{name}"):
            return bool(self._blob(container, name).exists())

    def upload(
        self, container: str, name: str, data: bytes | Any, *, overwrite: bool = True,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Upload bytes or a readable stream as one blob (with ``metadata``, if any)."""
        with sdk_errors(f"uploading {container}/{name}"):
            self._blob(container, name).upload_blob(data, overwrite=overwrite,
                                                    metadata=metadata)

    def upload_file(self, container: str, name: str, path: str) -> None:
        """Upload a local file."""
        with open(path, "rb") as stream:
            self.upload(container, name, stream)

    def copy(self, container: str, name: str, to_container: str, to_name: str) -> None:
        """Copy a blob by streaming it through this process (no cross-container SAS needed)."""
        with sdk_errors(f"copying {container}/{name} to {to_container}/{to_name}"):
            source = self._blob(container, name).download_blob()
            target = self._blob(to_container, to_name)
            target.upload_blob(source.chunks(), overwrite=True)

    def download(
        self, container: str, name: str, *, offset: int | None = None, length: int | None = None,
        etag: str | None = None,
    ) -> bytes:
        """Download a blob, or ``length`` bytes of it from ``offset``.

        With ``etag`` the read succeeds only while the blob is that version (ConflictError
        otherwise), so ranges planned on one version are never read from another.
        """
        with sdk_errors(f"downloading {container}/{name}"):
            client = self._blob(container, name)
            return bytes(client.download_blob(offset=offset, length=length,
                                              **_if_version(etag)).readall())

    def download_to_stream(
        self, container: str, name: str, stream: Any, *, offset: int | None = None,
        length: int | None = None, etag: str | None = None,
    ) -> int:
        """Write a blob (or a range of it) into an open binary stream; returns the bytes."""
        with sdk_errors(f"downloading {container}/{name}"):
            client = self._blob(container, name)
            return int(client.download_blob(offset=offset, length=length,
                                            **_if_version(etag)).readinto(stream))

    def download_to_file(self, container: str, name: str, path: str) -> None:
        """Download a blob into a local file, creating its folder."""
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with sdk_errors(f"downloading {container}/{name}"), open(path, "wb") as stream:
            self._blob(container, name).download_blob().readinto(stream)

    def list_pages(
        self, container: str, prefix: str, *, continuation: str | None = None, page_size: int = 5000
    ) -> Iterator[tuple[list[BlobRef], str | None]]:
        """Yield one listing page at a time with the token that resumes after it."""
        client = self._container(container)
        with sdk_errors(f"listing {container}/{prefix}"):
            pages = client.list_blobs(name_starts_with=prefix or None, results_per_page=page_size)
            paged: Any = pages.by_page(continuation_token=continuation)
            for page in paged:
                refs = [BlobRef(b.name, int(b.size or 0), str(b.etag), _md5(b)) for b in page]
                yield refs, paged.continuation_token

    def list_names(self, container: str, prefix: str) -> Iterator[BlobRef]:
        """Every blob under a prefix (for small trees such as code snapshots)."""
        for refs, _ in self.list_pages(container, prefix):
            yield from refs

    def list_metadata(self, container: str, prefix: str
                      ) -> Iterator[tuple[str, dict[str, str]]]:
        """Every blob under a prefix with its metadata."""
        client = self._container(container)
        with sdk_errors(f"listing {container}/{prefix}"):
            for blob in client.list_blobs(name_starts_with=prefix or None,
                                          include=["metadata"]):
                yield blob.name, dict(blob.metadata or {})

    def delete(self, container: str, name: str) -> bool:
        """Delete one blob; False when it was not there."""
        try:
            with sdk_errors(f"deleting {container}/{name}"):
                self._blob(container, name).delete_blob()
        except StorageNotFoundError:
            return False
        return True

    def delete_prefix(self, container: str, prefix: str) -> int:
        """Delete every blob under a prefix; returns how many."""
        client = self._container(container)
        count = 0
        for ref in self.list_names(container, prefix):
            with sdk_errors(f"deleting {container}/{ref.name}"):
                client.delete_blob(ref.name)
            count += 1
        return count

    def block_writer(self, container: str, name: str) -> BlockWriter:
        """A writer that buffers into large blocks and commits them as one blob."""
        return BlockWriter(self, container, name)

    def _stage(self, container: str, name: str, block_id: str, data: bytes) -> None:
        with sdk_errors(f"writing {container}/{name}"):
            self._blob(container, name).stage_block(block_id, data)

    def _commit(self, container: str, name: str, block_ids: list[str]) -> None:
        with sdk_errors(f"committing {container}/{name}"):
            blocks = [BlobBlock(block_id=b) for b in block_ids]
            self._blob(container, name).commit_block_list(blocks)


def _if_version(etag: str | None) -> dict[str, Any]:
    if not etag:
        return {}
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


def _md5(blob: Any) -> str:
    digest = getattr(getattr(blob, "content_settings", None), "content_md5", None)
    return bytes(digest).hex() if digest else ""


class BlockWriter:
    """Buffer writes into 8 MiB blocks; ``close()`` commits them (appending per row is slow)."""

    def __init__(self, store: BlobStore, container: str, name: str) -> None:
        self._store, self._container, self._name = store, container, name
        self._buffer = bytearray()
        self._block_ids: list[str] = []
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        """Append bytes to the blob."""
        self._buffer += data
        self.bytes_written += len(data)
        if len(self._buffer) >= _BLOCK_SIZE:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        block_id = f"{len(self._block_ids):08d}".encode().hex()
        self._store._stage(self._container, self._name, block_id, bytes(self._buffer))
        self._block_ids.append(block_id)
        self._buffer.clear()

    def close(self) -> None:
        """Commit every block written so far (an empty blob when nothing was written)."""
        self._flush()
        self._store._commit(self._container, self._name, self._block_ids)
