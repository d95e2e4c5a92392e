"""A worker's loop: poll the app's queues as the Functions host's queue listener does.

Each queue on its own backoff (a busy queue back to back, an idle one, such as a poison
queue, ever less often up to ``maxPollingInterval``), messages taken in batches and run
at once up to the host's concurrency (``batchSize`` + ``newBatchThreshold``), each through
:func:`batchfx.local.queue_bindings.handle`. A worker runs in a process of its own
(``worker_main``) or, for a one-instance runner, in the runner's process
(``serve_queues``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from batchfx.core.errors import StorageError
from batchfx.core.settings import Settings
from batchfx.local.queue_bindings import (
    HostQueueOptions,
    QueueTrigger,
    handle,
    queue_triggers,
    receive_batch,
)
from batchfx.storage import QueueStore, ReceivedMessage

__all__ = ["Dispatch", "PollBackoff", "QueuePoller", "serve_queues", "watch_parent",
           "worker_main"]

logger = logging.getLogger(__name__)


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
                messages = receive_batch(self._queues, trigger, self._options, room)
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

    def run(self, stop: threading.Event, *,
            on_stop: Callable[[], None] | None = None) -> None:
        """Poll until ``stop`` is set, sleeping until the next queue is due or, when full,
        until a message is done; then call ``on_stop`` (the scorer's drain: mini-batches
        not started go back to the queue) and wait for the messages still running."""
        while not stop.is_set():
            self.poll_due()
            with self._cond:
                if self._running > self._options.new_batch_threshold:
                    self._cond.wait(0.25)  # no room: until one is done (or stop is seen)
                    continue
            wait = self.wait_s()
            if wait > 0:
                stop.wait(wait)
        if on_stop is not None:
            on_stop()
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


def _wait_for_queues(queues: QueueStore, triggers: list[QueueTrigger],
                     stop: threading.Event) -> None:
    """Wait quietly until the queues exist: a worker starts while the runner is still
    starting the storage and creating them."""
    for trigger in triggers:
        while not stop.is_set():
            try:
                queues.approximate_count(trigger.queue)
                break
            except StorageError:
                stop.wait(0.1)


def serve_queues(settings: Settings, env: dict[str, str], options: HostQueueOptions,
                 stop: threading.Event) -> None:
    """Pull the app's queues with ``settings`` until ``stop`` is set, then finish the
    messages under way and shut the script processes down."""
    from batchfx.api import context as app_context
    from batchfx.local.bindings import load_app

    app_context.use_settings(settings)
    triggers = queue_triggers(load_app(), env)
    queues = app_context.storage().queues
    _wait_for_queues(queues, triggers, stop)
    pool = app_context.script_pool()
    try:  # stopping drains the pool: run()s under way finish, the rest go back untried
        QueuePoller(queues, triggers, options).run(stop, on_stop=pool.drain)
    finally:
        pool.close()


def worker_main(env: dict[str, str], options: HostQueueOptions, log_level: str,
                runner_pid: int) -> None:
    """Entry of a worker process: load the app, then pull queues until SIGTERM or until
    ``runner_pid``, the process that started it, is gone (even before this one was up)."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(processName)s %(name)s "
                        "%(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=watch_parent, args=(runner_pid, stop), daemon=True,
                     name="batchfx-parent-watch").start()
    serve_queues(Settings.from_env(env), env, options, stop)
