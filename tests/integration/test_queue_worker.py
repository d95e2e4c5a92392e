"""The local runner's queue semantics against Azurite: the host's contract for triggers."""

from __future__ import annotations

import threading
import time
from typing import Any

import azure.functions as func
import pytest

from batchfx.local.queue_worker import HostQueueOptions, QueueTrigger, handle, poll_once
from batchfx.settings import Settings
from batchfx.storage import QueueStore

OPTIONS = HostQueueOptions(max_dequeue_count=3, retry_delay_s=0, message_lease_s=2)


@pytest.fixture
def queues(connection_string: str, unique_name: str) -> QueueStore:
    store = QueueStore.from_settings(Settings(connection_string=connection_string))
    store.ensure_queue(unique_name)
    return store


def _trigger(queue: str, fn: Any) -> QueueTrigger:
    return QueueTrigger("fn", queue, "msg", fn)


def test_a_handled_message_is_deleted(queues: QueueStore, unique_name: str) -> None:
    seen: list[tuple[str, int | None]] = []

    def fn(msg: func.QueueMessage) -> None:
        seen.append((msg.get_body().decode(), msg.dequeue_count))

    queues.send(unique_name, "hello")
    assert poll_once(queues, [_trigger(unique_name, fn)], OPTIONS) == 1
    assert seen == [("hello", 1)]
    assert queues.approximate_count(unique_name) == 0


def test_a_failing_function_is_retried_then_the_message_goes_to_poison(
        queues: QueueStore, unique_name: str) -> None:
    counts: list[int | None] = []

    def fn(msg: func.QueueMessage) -> None:
        counts.append(msg.dequeue_count)
        raise RuntimeError("boom")

    queues.send(unique_name, "bad")
    trigger = _trigger(unique_name, fn)
    for _ in range(10):
        poll_once(queues, [trigger], OPTIONS)
        if len(counts) == 3:
            break
    assert counts == [1, 2, 3]
    assert queues.approximate_count(unique_name) == 0
    poisoned = list(queues.receive(f"{unique_name}-poison", visibility_timeout=5))
    assert [m.content for m in poisoned] == ["bad"]


def test_a_message_delivered_too_often_goes_to_poison_without_running(
        queues: QueueStore, unique_name: str) -> None:
    queues.send(unique_name, "crashy")
    for _ in range(3):  # three deliveries whose worker "died" (message never deleted)
        for m in queues.receive(unique_name, visibility_timeout=1):
            queues.extend(unique_name, m.id, m.pop_receipt, 0)
    called = []
    messages = list(queues.receive(unique_name, visibility_timeout=5))
    assert messages[0].dequeue_count == 4
    handle(queues, _trigger(unique_name, called.append), messages[0], OPTIONS)
    assert called == []
    assert [m.content for m in queues.receive(f"{unique_name}-poison", visibility_timeout=5)] \
        == ["crashy"]


def test_the_lease_is_renewed_while_the_function_runs(
        queues: QueueStore, unique_name: str) -> None:
    stolen: list[str] = []
    release = threading.Event()

    def fn(msg: func.QueueMessage) -> None:
        # The lease is 2 s; the function takes ~4 s. Nobody else may get the message.
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            stolen.extend(m.content for m in queues.receive(unique_name, visibility_timeout=1))
            time.sleep(0.3)
        release.set()

    queues.send(unique_name, "long")
    poll_once(queues, [_trigger(unique_name, fn)], OPTIONS)
    assert release.is_set()
    assert stolen == []
    assert queues.approximate_count(unique_name) == 0


def test_host_json_options_are_read(tmp_path: Any) -> None:
    path = tmp_path / "host.json"
    path.write_text('{"extensions": {"queues": {"maxDequeueCount": 7, '
                    '"visibilityTimeout": "00:00:05", "maxPollingInterval": "00:00:01"}}}')
    options = HostQueueOptions.from_host_json(path, message_lease_s=9)
    assert options == HostQueueOptions(7, 5.0, 1.0, 9)
