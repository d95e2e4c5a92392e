"""Queue storage: the only place batchfx calls azure-storage-queue.

Messages are base64 text (``TextBase64EncodePolicy``), as the Functions host expects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import (
    ExponentialRetry,
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from batchfx.core.settings import Settings
from batchfx.storage.clients import (
    BackoffRetry,
    client_transport,
    credential_for,
    sdk_errors,
    service_url,
)

__all__ = ["QueueStore", "ReceivedMessage"]


@dataclass(frozen=True)
class ReceivedMessage:
    """A message taken from a queue, invisible to others until its visibility timeout."""

    id: str
    pop_receipt: str
    dequeue_count: int
    content: str
    insertion_time: str | None
    expiration_time: str | None


class QueueRetry(BackoffRetry, ExponentialRetry):
    """The queue SDK's retry policy on the schedule of the ``storage_retry_*`` settings."""


class QueueStore:
    """Queue operations batchfx needs, with SDK errors turned into batchfx errors."""

    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service
        self._clients: dict[str, QueueClient] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueStore:
        """Connect with the connection string, or with a managed identity."""
        retry = QueueRetry.from_settings(settings)
        options = {"retry_policy": retry, "transport": client_transport()}
        if settings.connection_string:
            return cls(QueueServiceClient.from_connection_string(settings.connection_string,
                                                    **options))
        url = service_url(settings, "queue")
        return cls(QueueServiceClient(url, credential=credential_for(settings), **options))

    def _queue(self, name: str) -> QueueClient:
        # A client per queue, kept: building one costs a tenth of a call's CPU.
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self._service.get_queue_client(
                name,
                message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy(),
            )
        return client

    def ensure_queue(self, name: str) -> None:
        """Create the queue if it does not exist."""
        with sdk_errors(f"creating queue {name!r}"), contextlib.suppress(ResourceExistsError):
            self._queue(name).create_queue()

    def send(self, queue: str, content: str, *, visibility_timeout: int | None = None) -> None:
        """Send one text message."""
        with sdk_errors(f"sending to queue {queue!r}"):
            self._queue(queue).send_message(content, visibility_timeout=visibility_timeout)

    def receive(self, queue: str, *, visibility_timeout: int, max_messages: int = 1) -> Iterator[
        ReceivedMessage
    ]:
        """Take up to ``max_messages`` messages, hiding them for ``visibility_timeout`` seconds."""
        with sdk_errors(f"receiving from queue {queue!r}"):
            # Without messages_per_page the SDK asks for one message per page, and only
            # the first page is read here: max_messages would never be more than 1.
            pager = self._queue(queue).receive_messages(
                messages_per_page=max_messages,
                max_messages=max_messages,
                visibility_timeout=visibility_timeout,
            )
            try:
                messages = list(next(pager.by_page()))
            except StopIteration:  # the SDK's pager ends this way on an empty queue
                messages = []
        for m in messages:
            yield ReceivedMessage(
                id=m.id,
                pop_receipt=str(m.pop_receipt),
                dequeue_count=int(m.dequeue_count or 1),
                content=str(m.content),
                insertion_time=m.inserted_on.isoformat() if m.inserted_on else None,
                expiration_time=m.expires_on.isoformat() if m.expires_on else None,
            )

    def extend(self, queue: str, message_id: str, pop_receipt: str, visibility_timeout: int) -> str:
        """Keep a message hidden for longer; returns the new pop receipt."""
        with sdk_errors(f"renewing a message on queue {queue!r}"):
            result = self._queue(queue).update_message(
                message_id, pop_receipt, visibility_timeout=visibility_timeout
            )
        return str(result.pop_receipt)

    def delete(self, queue: str, message_id: str, pop_receipt: str) -> None:
        """Delete a message once it was handled."""
        with sdk_errors(f"deleting a message on queue {queue!r}"):
            self._queue(queue).delete_message(message_id, pop_receipt)

    def approximate_count(self, queue: str) -> int:
        """Roughly how many messages wait in the queue."""
        with sdk_errors(f"reading queue {queue!r}"):
            return int(self._queue(queue).get_queue_properties().approximate_message_count or 0)
