"""batchfx.storage's queues against a real Azurite: messages, visibility and receipts."""

from __future__ import annotations

import base64

import pytest
from azure.storage.queue import QueueClient

from batchfx.core.errors import StorageError, StorageNotFoundError
from batchfx.core.settings import Settings
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


@pytest.fixture
def queue(settings: Settings) -> str:
    return settings.queue_name


def test_queue_send_then_receive_gives_the_text(storage: Storage, queue: str) -> None:
    text = '{"job_id":"j1","index":3,"note":"ünïcödé"}'
    storage.queues.send(queue, text)
    (message,) = storage.queues.receive(queue, visibility_timeout=30)
    assert message.content == text
    assert message.dequeue_count == 1
    assert message.id and message.pop_receipt


def test_queue_message_is_base64_on_the_wire(storage: Storage, queue: str,
                                             connection_string: str) -> None:
    text = '{"job_id":"j1","index":3,"note":"ünïcödé"}'
    storage.queues.send(queue, text)
    raw = QueueClient.from_connection_string(connection_string, queue)  # no decode policy
    (message,) = raw.peek_messages()
    assert message.content == base64.b64encode(text.encode()).decode()


def test_queue_receive_from_an_empty_queue_returns_nothing(storage: Storage, queue: str) -> None:
    assert list(storage.queues.receive(queue, visibility_timeout=30, max_messages=5)) == []


def test_queue_received_message_is_hidden_from_the_next_receive(storage: Storage,
                                                                queue: str) -> None:
    storage.queues.send(queue, "one")
    assert len(list(storage.queues.receive(queue, visibility_timeout=60))) == 1
    assert list(storage.queues.receive(queue, visibility_timeout=60)) == []


def test_queue_receive_takes_up_to_max_messages(storage: Storage, queue: str) -> None:
    for i in range(5):
        storage.queues.send(queue, f"m{i}")
    received = list(storage.queues.receive(queue, visibility_timeout=60, max_messages=3))
    assert len(received) == 3


def test_queue_send_with_visibility_timeout_hides_the_message(storage: Storage,
                                                              queue: str) -> None:
    storage.queues.send(queue, "later", visibility_timeout=60)
    assert list(storage.queues.receive(queue, visibility_timeout=30)) == []
    assert storage.queues.approximate_count(queue) == 1


def test_queue_extend_returns_a_receipt_that_delete_accepts(storage: Storage,
                                                            queue: str) -> None:
    storage.queues.send(queue, "work")
    (message,) = storage.queues.receive(queue, visibility_timeout=30)
    receipt = storage.queues.extend(queue, message.id, message.pop_receipt, 120)
    assert receipt != message.pop_receipt
    storage.queues.delete(queue, message.id, receipt)
    assert storage.queues.approximate_count(queue) == 0


def test_queue_extend_to_zero_makes_the_message_visible_again(storage: Storage,
                                                              queue: str) -> None:
    storage.queues.send(queue, "retry me")
    (first,) = storage.queues.receive(queue, visibility_timeout=60)
    storage.queues.extend(queue, first.id, first.pop_receipt, 0)
    (again,) = storage.queues.receive(queue, visibility_timeout=60)
    assert (again.id, again.content, again.dequeue_count) == (first.id, "retry me", 2)


def test_queue_extend_with_a_stale_receipt_fails(storage: Storage, queue: str) -> None:
    storage.queues.send(queue, "work")
    (message,) = storage.queues.receive(queue, visibility_timeout=30)
    storage.queues.extend(queue, message.id, message.pop_receipt, 30)
    with pytest.raises(StorageError):
        storage.queues.extend(queue, message.id, message.pop_receipt, 30)


def test_queue_delete_removes_the_message(storage: Storage, queue: str) -> None:
    storage.queues.send(queue, "done")
    (message,) = storage.queues.receive(queue, visibility_timeout=30)
    storage.queues.delete(queue, message.id, message.pop_receipt)
    assert storage.queues.approximate_count(queue) == 0


def test_queue_send_to_a_missing_queue_raises_not_found_naming_it(storage: Storage,
                                                                  unique_name: str) -> None:
    missing = unique_name + "missing"
    with pytest.raises(StorageNotFoundError) as info:
        storage.queues.send(missing, "x")
    assert missing in str(info.value)
