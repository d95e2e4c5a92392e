"""A worker process pulling the app's queues with the Functions host's semantics.

Visibility lease renewed while the function runs, dequeue count, retry delay
(``visibilityTimeout``) and the poison queue after ``maxDequeueCount`` failures — the
same contract the host gives ``@queue_trigger`` functions. Each queue is polled on its own
backoff, as the host's queue listener does: a busy queue back to back, an idle one (the
poison queue) ever less often, up to ``maxPollingInterval``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage

from batchfx.errors import StorageNotFoundError
from batchfx.local.app_loader import app_functions
from batchfx.storage import QueueStore, ReceivedMessage

__all__ = ["Dispatch", "HostQueueOptions", "PollBackoff", "QueuePoller", "QueueTrigger",
           "poll_once",
           "queue_triggers", "watch_parent", "worker_main"]

logger = logging.getLogger(__name__)


def _seconds(value: str | None, default: float) -> float:
    if not value:
        return default
    h, m, s = value.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@dataclass(frozen=True)
class HostQueueOptions:
    """``extensions.queues`` of host.json, plus how long a taken message stays hidden.

    As the host does, a worker takes ``batch_size`` messages at a time and runs them at
    once, and takes the next batch when no more than ``new_batch_threshold`` still run.
    """

    max_dequeue_count: int = 5
    retry_delay_s: float = 0.0
    max_polling_interval_s: float = 2.0
    message_lease_s: float = 30.0
    batch_size: int = 16
    new_batch_threshold: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 32:
            raise ValueError(f"batchSize: got {self.batch_size} — expected 1 to 32 messages "
                             "(the queue service hands out at most 32 at a time)")
        if self.new_batch_threshold < 0:
            raise ValueError(f"newBatchThreshold: got {self.new_batch_threshold} — expected "
                             "0 or more messages")

    @property
    def concurrency(self) -> int:
        """The most messages one worker runs at once."""
        return self.batch_size + self.new_batch_threshold

    @classmethod
    def from_host_json(cls, path: Path, *, message_lease_s: float = 30.0) -> HostQueueOptions:
        """Read the queue options the real host would use."""
        queues = json.loads(path.read_text()).get("extensions", {}).get("queues", {}) \
            if path.is_file() else {}
        batch = int(queues.get("batchSize", cls.batch_size))
        return cls(int(queues.get("maxDequeueCount", 5)),
                   _seconds(queues.get("visibilityTimeout"), 0.0),
                   _seconds(queues.get("maxPollingInterval"), 2.0),
                   message_lease_s, batch, int(queues.get("newBatchThreshold", batch // 2)))


@dataclass(frozen=True)
class QueueTrigger:
    """A queue-triggered function and the queue it listens to (settings resolved)."""

    name: str
    queue: str
    arg: str
    function: Callable[..., Any]


def _resolve(value: str, env: Mapping[str, str]) -> str:
    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in env:
            raise KeyError(f"app setting {key} is not set (used in a queue name)")
        return env[key]
    return re.sub(r"%([^%]+)%", repl, value)


def queue_triggers(app: func.FunctionRegister, env: Mapping[str, str]) -> list[QueueTrigger]:
    """The app's queue-triggered functions with ``%SETTING%`` queue names resolved."""
    triggers = []
    for fn in app_functions(app):
        trigger = fn.get_trigger()
        if trigger is None or trigger.get_binding_name() != "queueTrigger":
            continue
        info = trigger.get_dict_repr()
        triggers.append(QueueTrigger(fn.get_function_name(), _resolve(info["queueName"], env),
                                     info["name"], fn.get_user_function()))
    return triggers


def _message(m: ReceivedMessage) -> QueueMessage:
    def when(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None
    return QueueMessage(  # type: ignore[no-untyped-call]
        id=m.id, body=m.content.encode("utf-8"), pop_receipt=m.pop_receipt,
        dequeue_count=m.dequeue_count, insertion_time=when(m.insertion_time),
        expiration_time=when(m.expiration_time))


class _Renewer:
    """Keeps a message hidden while its function runs (as the host does)."""

    def __init__(self, queues: QueueStore, queue: str, m: ReceivedMessage, lease: float) -> None:
        self.receipt = m.pop_receipt
        self._stop = threading.Event()
        self._args = (queues, queue, m.id, lease)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        queues, queue, message_id, lease = self._args
        while not self._stop.wait(lease / 3):
            try:
                self.receipt = queues.extend(queue, message_id, self.receipt, int(lease))
            except Exception as exc:  # the message may be gone; the function goes on
                logger.warning("could not renew message %s: %s", message_id, exc)

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        return self.receipt


def _to_poison(queues: QueueStore, trigger: QueueTrigger, m: ReceivedMessage,
               receipt: str) -> None:
    queues.ensure_queue(f"{trigger.queue}-poison")
    queues.send(f"{trigger.queue}-poison", m.content)
    queues.delete(trigger.queue, m.id, receipt)
    logger.error("message %s moved to %s-poison after %d deliveries", m.id, trigger.queue,
                 m.dequeue_count)


def handle(queues: QueueStore, trigger: QueueTrigger, m: ReceivedMessage,
           options: HostQueueOptions) -> bool:
    """Run the function on one message; True when it succeeded."""
    if m.dequeue_count > options.max_dequeue_count:
        _to_poison(queues, trigger, m, m.pop_receipt)
        return False
    renewer = _Renewer(queues, trigger.queue, m, options.message_lease_s)
    try:
        trigger.function(**{trigger.arg: _message(m)})
    except Exception:
        receipt = renewer.stop()
        logger.exception("function %s failed on message %s (delivery %d)", trigger.name, m.id,
                         m.dequeue_count)
        if m.dequeue_count >= options.max_dequeue_count:
            _to_poison(queues, trigger, m, receipt)
        else:
            queues.extend(trigger.queue, m.id, receipt, int(options.retry_delay_s))
        return False
    try:
        queues.delete(trigger.queue, m.id, renewer.stop())
    except StorageNotFoundError:
        # The lease ran out while the function ran (renewals failed) and another worker
        # took the message with a new pop receipt: it is that worker's to delete now.
        logger.warning("message %s: lease lost while %s ran; left to the worker holding it",
                       m.id, trigger.name)
    return True


def _receive(queues: QueueStore, trigger: QueueTrigger, options: HostQueueOptions,
             count: int) -> list[ReceivedMessage]:
    return list(queues.receive(trigger.queue, visibility_timeout=int(options.message_lease_s),
                               max_messages=count))


def poll_once(queues: QueueStore, triggers: list[QueueTrigger],
              options: HostQueueOptions) -> int:
    """Take at most one batch per queue and handle it here, message by message; returns
    how many messages were handled."""
    handled = 0
    for trigger in triggers:
        for m in _receive(queues, trigger, options, options.batch_size):
            handle(queues, trigger, m, options)
            handled += 1
    return handled


class PollBackoff:
    """One queue's polling schedule, as the host's queue listener keeps it: polled again at
    once after a receive that found a message; after an empty one, ``min_s`` later, then
    twice as long after each next empty receive, never more than ``max_s``."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s, self.max_s = min_s, max(min_s, max_s)
        self.delay_s = 0.0
        self.next_at = float("-inf")  # due now

    def due(self, now: float) -> bool:
        """Whether the queue should be received from at ``now``."""
        return now >= self.next_at

    def record(self, found: bool, now: float) -> None:
        """A receive that ended at ``now`` found a message, or not."""
        if found:
            self.delay_s = 0.0
        else:
            self.delay_s = min(self.max_s, max(self.min_s, self.delay_s * 2))
        self.next_at = now + self.delay_s


Dispatch = Callable[[Callable[[], None]], None]


class QueuePoller:
    """Receives from each trigger's queue on its own backoff (a busy queue back to back, an
    idle one, such as a poison queue, at most every ``max_polling_interval_s`` once it has
    backed off), so idle queues cost few storage calls while another one is busy.

    Messages run at once, up to the host's concurrency: ``dispatch`` starts one (a thread
    pool by default; tests may run it in place), and a new batch is taken only while no
    more than ``new_batch_threshold`` run.
    """

    MIN_INTERVAL_S = 0.1  # the host's shortest polling interval

    def __init__(self, queues: QueueStore, triggers: list[QueueTrigger],
                 options: HostQueueOptions, *,
                 clock: Callable[[], float] = time.monotonic,
                 dispatch: Dispatch | None = None) -> None:
        self._queues, self._options, self._clock = queues, options, clock
        self._schedule = [(trigger, PollBackoff(self.MIN_INTERVAL_S,
                                                options.max_polling_interval_s))
                          for trigger in triggers]
        self._cond = threading.Condition()
        self._running = 0
        self._pool: ThreadPoolExecutor | None = None
        if dispatch is None:
            self._pool = ThreadPoolExecutor(options.concurrency,
                                            thread_name_prefix="batchfx-invocation")
            dispatch = self._submit
        self._dispatch = dispatch

    def _submit(self, invocation: Callable[[], None]) -> None:
        assert self._pool is not None
        self._pool.submit(invocation)

    def _room(self) -> int:
        """How many messages to take now: a batch, once few enough still run."""
        with self._cond:
            return (self._options.batch_size
                    if self._running <= self._options.new_batch_threshold else 0)

    def _start(self, trigger: QueueTrigger, m: ReceivedMessage) -> None:
        def invocation() -> None:
            try:
                handle(self._queues, trigger, m, self._options)
            except Exception:  # a storage error deleting or moving it: the lease runs out
                logger.exception("message %s of queue %s: not settled", m.id, trigger.queue)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()

        with self._cond:
            self._running += 1
        self._dispatch(invocation)

    def poll_due(self) -> int:
        """Receive from every queue that is due, while there is room; returns how many
        messages were taken."""
        taken = 0
        for trigger, backoff in self._schedule:
            if not backoff.due(self._clock()):
                continue
            room = self._room()
            if not room:
                break
            try:
                messages = _receive(self._queues, trigger, self._options, room)
            except Exception:
                logger.exception("polling queue %s failed; trying again", trigger.queue)
                messages = []
            backoff.record(bool(messages), self._clock())
            for m in messages:
                self._start(trigger, m)
            taken += len(messages)
        return taken

    def wait_s(self) -> float:
        """Seconds until the next queue is due (0: one is due now)."""
        if not self._schedule:
            return self._options.max_polling_interval_s
        earliest = min(backoff.next_at for _, backoff in self._schedule)
        return max(0.0, earliest - self._clock())

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set, sleeping until the next queue is due or, when full,
        until a message is done; then wait for the messages still running."""
        while not stop.is_set():
            self.poll_due()
            with self._cond:
                if self._running > self._options.new_batch_threshold:
                    self._cond.wait(0.25)  # no room: until one is done (or stop is seen)
                    continue
            wait = self.wait_s()
            if wait > 0:
                stop.wait(wait)
        self.close()

    def close(self) -> None:
        """Wait for the messages still running (their functions finish)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def watch_parent(parent: int, stop: threading.Event, interval_s: float = 1.0) -> None:
    """Set ``stop`` once the runner that started this worker is gone (killed before it
    could stop its workers): a worker must not go on taking messages without it."""
    while not stop.wait(interval_s):
        if os.getppid() != parent:
            logger.warning("the runner (pid %d) is gone; stopping after this message", parent)
            stop.set()


def worker_main(env: dict[str, str], options: HostQueueOptions, log_level: str,
                runner_pid: int) -> None:
    """Entry of a worker process: load the app, then pull queues until SIGTERM or until
    ``runner_pid``, the process that started it, is gone (even before this one was up)."""
    from batchfx import app_context
    from batchfx.local.app_loader import load_app
    from batchfx.settings import Settings

    logging.basicConfig(level=log_level, format="%(asctime)s %(processName)s %(name)s "
                        "%(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=watch_parent, args=(runner_pid, stop), daemon=True,
                     name="batchfx-parent-watch").start()
    settings = Settings.from_env(env)
    app_context.use_settings(settings)
    triggers = queue_triggers(load_app(), env)
    QueuePoller(app_context.storage().queues, triggers, options).run(stop)
    app_context.script_pool().close()
