"""The Functions host's contract for ``@queue_trigger`` functions, message by message.

Visibility lease renewed while the function runs, dequeue count, retry delay
(``visibilityTimeout``) and the poison queue after ``maxDequeueCount`` failures, with the
options host.json gives (``extensions.queues``). The loop that polls the queues is
:mod:`batchfx.local.queue_poller`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage

from batchfx.core.errors import StorageNotFoundError
from batchfx.local.bindings import resolve_settings, triggered
from batchfx.storage import QueueStore, ReceivedMessage

__all__ = ["HostQueueOptions", "QueueTrigger", "handle", "poll_once", "queue_triggers",
           "receive_batch"]

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



def queue_triggers(app: func.FunctionRegister, env: Mapping[str, str]) -> list[QueueTrigger]:
    """The app's queue-triggered functions with ``%SETTING%`` queue names resolved."""
    triggers = []
    for fn in triggered(app, "queueTrigger"):
        queue = resolve_settings(fn.trigger["queueName"], env, "a queue name")
        triggers.append(QueueTrigger(fn.name, queue, fn.trigger["name"], fn.user_function))
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


def receive_batch(queues: QueueStore, trigger: QueueTrigger, options: HostQueueOptions,
                  count: int) -> list[ReceivedMessage]:
    """Take up to ``count`` messages, hidden for the message lease."""
    return list(queues.receive(trigger.queue, visibility_timeout=int(options.message_lease_s),
                               max_messages=count))


def poll_once(queues: QueueStore, triggers: list[QueueTrigger],
              options: HostQueueOptions) -> int:
    """Take at most one batch per queue and handle it here, message by message; returns
    how many messages were handled."""
    handled = 0
    for trigger in triggers:
        for m in receive_batch(queues, trigger, options, options.batch_size):
            handle(queues, trigger, m, options)
            handled += 1
    return handled
