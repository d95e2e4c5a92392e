"""Azure Storage access: every Azure SDK call of batchfx lives in this package."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from batchfx.core.settings import Settings
from batchfx.storage.blobs import BlobRef, BlobStore, BlockWriter
from batchfx.storage.local_files import LOCAL, FileStore, LocalFiles, is_local_path
from batchfx.storage.queues import QueueStore, ReceivedMessage
from batchfx.storage.tables import Entity, TableStore

__all__ = [
    "LOCAL",
    "BlobRef",
    "BlobStore",
    "BlockWriter",
    "Entity",
    "FileStore",
    "LocalFiles",
    "QueueStore",
    "ReceivedMessage",
    "Storage",
    "TableStore",
    "is_local_path",
]


@dataclass(frozen=True)
class Storage:
    """The app's storage account: blobs, queues and tables, plus the settings naming them."""

    settings: Settings
    blobs: BlobStore
    queues: QueueStore
    tables: TableStore

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        """Connect to the account the settings name."""
        return cls(
            settings,
            BlobStore.from_settings(settings),
            QueueStore.from_settings(settings),
            TableStore.from_settings(settings),
        )

    @cached_property
    def local(self) -> LocalFiles:
        """The local folders jobs may read in place (``BATCHFX_LOCAL_ROOTS``)."""
        return LocalFiles(self.settings.local_roots)

    def files(self, container: str) -> FileStore:
        """Where a job's files are read: the container's blobs, or local folders
        (``LOCAL``) read in place."""
        return self.local if container == LOCAL else self.blobs

    def ensure_resources(self) -> None:
        """Create the app's container, queues and tables when they are missing."""
        s = self.settings
        self.blobs.ensure_container(s.jobs_container)
        self.blobs.ensure_container(s.inbox_container)
        self.queues.ensure_queue(s.queue_name)
        self.queues.ensure_queue(s.poison_queue_name)
        self.tables.ensure_table(s.jobs_table)
        self.tables.ensure_table(s.minibatches_table)
