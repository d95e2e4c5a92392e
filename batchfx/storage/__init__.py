"""Azure Storage access: every Azure SDK call of batchfx lives in this package."""

from __future__ import annotations

from dataclasses import dataclass

from batchfx.settings import Settings
from batchfx.storage.blobs import BlobRef, BlobStore, BlockWriter
from batchfx.storage.queues import QueueStore, ReceivedMessage
from batchfx.storage.tables import Entity, TableStore

__all__ = [
    "BlobRef",
    "BlobStore",
    "BlockWriter",
    "Entity",
    "QueueStore",
    "ReceivedMessage",
    "Storage",
    "TableStore",
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

    def ensure_resources(self) -> None:
        """Create the app's container, queues and tables when they are missing."""
        s = self.settings
        self.blobs.ensure_container(s.jobs_container)
        self.blobs.ensure_container(s.inbox_container)
        self.queues.ensure_queue(s.queue_name)
        self.queues.ensure_queue(s.poison_queue_name)
        self.tables.ensure_table(s.jobs_table)
        self.tables.ensure_table(s.minibatches_table)
