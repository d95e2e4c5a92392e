"""The local runner's queue semantics against Azurite: the host's contract for triggers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import azure.functions as func
import pytest

from batchfx.core.settings import Settings
from batchfx.local.queue_bindings import (
    HostQueueOptions,
    QueueTrigger,
    handle,
    poll_once,
)
from batchfx.local.queue_poller import QueuePoller
from batchfx.storage import QueueStore, ReceivedMessage

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


class _CountingQueues:
    """The real QueueStore, with its receives counted per queue."""

    def __init__(self, store: QueueStore) -> None:
        self._store = store
        self.receives: Counter[str] = Counter()

    def receive(self, queue: str, **kwargs: Any) -> Iterator[ReceivedMessage]:
        self.receives[queue] += 1
        return self._store.receive(queue, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_the_worker_loop_polls_an_idle_queue_on_its_own_backoff(
        queues: QueueStore, unique_name: str) -> None:
    idle = f"{unique_name}-poison"
    queues.ensure_queue(idle)
    for i in range(20):
        queues.send(unique_name, f"m{i}")
    done = threading.Event()
    seen: list[str] = []

    def fn(msg: func.QueueMessage) -> None:
        seen.append(msg.get_body().decode())
        if len(seen) == 20:
            done.set()

    counting = _CountingQueues(queues)
    # One message at a time (batchSize 1), so the busy queue is received from 20 times.
    options = HostQueueOptions(max_dequeue_count=3, max_polling_interval_s=2.0,
                               message_lease_s=30, batch_size=1, new_batch_threshold=0)
    poller = QueuePoller(cast(QueueStore, counting),
                         [_trigger(unique_name, fn), QueueTrigger("p", idle, "msg", fn)], options)
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert done.wait(30)
        busy_receives = counting.receives[unique_name]
        idle_receives = counting.receives[idle]
    finally:
        stopped_at = time.monotonic()
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - stopped_at < 1.5  # stopped within the wait, not after 2 s
    assert sorted(seen, key=lambda m: int(m[1:])) == [f"m{i}" for i in range(20)]
    # The busy queue was received from back to back, the idle one a few times as it backed
    # off (0, 0.1, 0.3, 0.7 s...), not once per loop as before.
    assert busy_receives >= 20
    assert idle_receives < busy_receives / 2, (busy_receives, idle_receives)


def test_messages_run_at_once_up_to_batch_size_plus_new_batch_threshold(
        queues: QueueStore, unique_name: str) -> None:
    """As the host: a batch of batchSize is taken and run at once, and the next batch only
    once no more than newBatchThreshold still run (so at most 4 + 2 at a time here)."""
    for i in range(20):
        queues.send(unique_name, f"m{i}")
    lock = threading.Lock()
    running: list[int] = [0]
    most: list[int] = [0]
    seen: list[str] = []
    done = threading.Event()

    def fn(msg: func.QueueMessage) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2 + 0.2 * (int(msg.get_body().decode()[1:]) % 4))  # 0.2 to 0.8 s
        with lock:
            running[0] -= 1
            seen.append(msg.get_body().decode())
            if len(seen) == 20:
                done.set()

    counting = _CountingQueues(queues)
    options = HostQueueOptions(max_dequeue_count=3, message_lease_s=30, batch_size=4,
                               new_batch_threshold=2)
    poller = QueuePoller(cast(QueueStore, counting), [_trigger(unique_name, fn)], options)
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert done.wait(60)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert sorted(seen, key=lambda m: int(m[1:])) == [f"m{i}" for i in range(20)]
    assert most[0] == 6, most  # 4 + 2, never more, and reached
    # Taken up to 4 at a time: 20 messages in 5 to 10 receives, not 20 (empty ones after).
    assert 5 <= counting.receives[unique_name] <= 12, counting.receives
    assert queues.approximate_count(unique_name) == 0


def test_host_json_batch_options_default_as_the_host_does(tmp_path: Any) -> None:
    path = tmp_path / "host.json"
    path.write_text('{"extensions": {"queues": {"batchSize": 8}}}')
    options = HostQueueOptions.from_host_json(path)
    assert (options.batch_size, options.new_batch_threshold, options.concurrency) == (8, 4, 12)
    with pytest.raises(ValueError, match="batchSize: got 33"):
        HostQueueOptions(batch_size=33)
