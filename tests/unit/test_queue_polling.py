"""The local queue worker's polling schedule: each queue on its own backoff, as the host's
queue listener polls (pure logic, a fake clock and an in-memory stand-in for QueueStore)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter, deque
from typing import Any, cast

import azure.functions as func
import pytest

from batchfx.local.queue_bindings import HostQueueOptions, QueueTrigger
from batchfx.local.queue_poller import PollBackoff, QueuePoller, watch_parent
from batchfx.storage import QueueStore, ReceivedMessage


def test_a_new_queue_is_due_at_once() -> None:
    assert PollBackoff(0.1, 2.0).due(0.0)


def test_empty_receives_back_off_exponentially_up_to_the_max() -> None:
    backoff = PollBackoff(0.1, 2.0)
    delays = []
    for _ in range(8):
        backoff.record(False, 10.0)
        delays.append(backoff.next_at - 10.0)
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])
    assert not backoff.due(11.99) and backoff.due(12.0)


def test_a_found_message_makes_the_queue_due_again_at_once_and_resets_the_backoff() -> None:
    backoff = PollBackoff(0.1, 2.0)
    for _ in range(6):
        backoff.record(False, 0.0)
    backoff.record(True, 5.0)
    assert backoff.due(5.0)
    backoff.record(False, 5.0)
    assert backoff.next_at == pytest.approx(5.1)


def test_a_max_below_the_min_is_raised_to_it() -> None:
    backoff = PollBackoff(0.1, 0.0)
    backoff.record(False, 0.0)
    backoff.record(False, 0.0)
    assert backoff.next_at == pytest.approx(0.1)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Queues:
    """In-memory stand-in for QueueStore's receive/delete; each receive costs 10 ms."""

    def __init__(self, clock: _Clock, messages: dict[str, int]) -> None:
        self.clock = clock
        self.waiting = {q: deque(f"{q}-{i}" for i in range(n)) for q, n in messages.items()}
        self.receives: Counter[str] = Counter()
        self.deleted: list[str] = []

    def receive(self, queue: str, *, visibility_timeout: int,
                max_messages: int = 1) -> list[ReceivedMessage]:
        self.receives[queue] += 1
        self.clock.now += 0.01
        taken = []
        while self.waiting.get(queue) and len(taken) < max_messages:
            body = self.waiting[queue].popleft()
            taken.append(ReceivedMessage(body, "receipt", 1, body, None, None))
        return taken

    def delete(self, queue: str, message_id: str, pop_receipt: str) -> None:
        self.deleted.append(message_id)


def _poller(clock: _Clock, messages: dict[str, int]) -> tuple[QueuePoller, _Queues]:
    queues = _Queues(clock, messages)

    def fn(msg: func.QueueMessage) -> None:
        clock.now += 0.09  # scoring one mini-batch takes 90 ms

    triggers = [QueueTrigger("score", "work", "msg", fn),
                QueueTrigger("poison", "work-poison", "msg", fn)]
    # One message at a time, run in place (the clock is this test's).
    options = HostQueueOptions(max_polling_interval_s=2.0, message_lease_s=600, batch_size=1,
                               new_batch_threshold=0)
    poller = QueuePoller(cast(QueueStore, queues), triggers, options, clock=clock,
                         dispatch=lambda invocation: invocation())
    return poller, queues


def test_a_busy_queue_is_polled_back_to_back_and_an_idle_one_backs_off() -> None:
    clock = _Clock()
    poller, queues = _poller(clock, {"work": 100})
    loops = 0
    while queues.waiting["work"] or loops == 0:
        poller.poll_due()
        assert poller.wait_s() == 0  # the busy queue is due again at once
        loops += 1
    assert len(queues.deleted) == 100 and clock.now == pytest.approx(10.0, abs=1.0)
    # ~10 s of scoring: the poison queue was received from at 0, 0.1, 0.3, 0.7, 1.5, 3.1,
    # then every 2 s, not once per mini-batch.
    assert queues.receives["work"] == 100
    assert queues.receives["work-poison"] <= 10


def test_an_idle_worker_sleeps_until_the_earliest_queue_is_due() -> None:
    clock = _Clock()
    poller, queues = _poller(clock, {})
    waits = []
    while clock.now < 20:
        poller.poll_due()
        waits.append(poller.wait_s())
        clock.now += waits[-1]
    assert all(0 < w <= 2.0 for w in waits)  # never busy, never past maxPollingInterval
    # Each queue at about 0, 0.1, 0.3, 0.7, 1.5, 3.1, then every 2 s: 13 or so in 20 s.
    assert 10 <= queues.receives["work"] <= 14
    assert 10 <= queues.receives["work-poison"] <= 14


def test_a_failing_receive_is_logged_and_backs_that_queue_off(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    poller, queues = _poller(clock, {"work": 30})
    failures = []

    def broken(queue: str, **kwargs: Any) -> list[ReceivedMessage]:
        if queue == "work-poison":
            failures.append(clock.now)
            raise ConnectionError("storage unreachable")
        return _Queues.receive(queues, queue, **kwargs)

    queues.receive = broken  # type: ignore[method-assign]
    for _ in range(30):
        assert poller.poll_due() == 1  # the other queue goes on
    assert len(failures) < 10  # tried at 0, 0.1, 0.3, 0.7, 1.5, 3.1: not on each of 30 loops
    gaps = [b - a for a, b in itertools.pairwise(failures)]
    assert gaps == sorted(gaps)
    assert "polling queue work-poison failed" in caplog.text


def test_run_stops_promptly_when_the_event_is_set() -> None:
    clock = _Clock()
    poller, _ = _poller(clock, {})
    stop = threading.Event()
    stop.set()
    poller.run(stop)  # returns at once


def test_a_worker_stops_once_its_runner_is_gone() -> None:
    stop = threading.Event()
    watch_parent(os.getppid() + 1_000_000, stop, interval_s=0.01)  # a parent it never had
    assert stop.is_set()


def test_a_worker_goes_on_while_its_runner_lives() -> None:
    stop = threading.Event()
    watcher = threading.Thread(target=watch_parent, args=(os.getppid(), stop, 0.01))
    watcher.start()
    time.sleep(0.1)
    assert not stop.is_set()  # ten looks at the parent, all alive
    stop.set()
    watcher.join(timeout=5)
    assert not watcher.is_alive()
