"""A pool of scoring-script processes per instance, shared by concurrent invocations.

The Functions host runs several queue invocations at once on one instance (host.json
``batchSize`` and ``newBatchThreshold``). Each invocation prepares its mini-batch on its
own thread (claim, inputs), borrows one of the job's ``process_count_per_node`` script
processes for each ``run()`` and gives it back at once: while one mini-batch runs, the
next one's inputs are staged and the last one's outcome is written. ``admit`` keeps at
most ``ahead + 1`` mini-batches per process of a job in hand on one instance, so an
instance does not claim work it will not start soon (other instances can take it).

Each process has its own slot number; its config gets its own ``AZUREML_BI_OUTPUT_PATH``
folder and log file, so two processes never write the same file. Nothing here knows
about Azure.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from batchfx.core.script_contract import MiniBatchContext, ScriptConfig, TryOutcome
from batchfx.scoring.process import ScriptProcess
from batchfx.tabular.batch import TabularBatch

__all__ = ["PoolDraining", "PoolRun", "ScriptPool", "slot_config"]

_log = logging.getLogger(__name__)


class PoolDraining(Exception):
    """The instance is stopping (``ScriptPool.drain``): no new run() starts here, so the
    mini-batch goes back untried for another instance."""


def slot_config(config: ScriptConfig, slot: int) -> ScriptConfig:
    """``config`` for the process in ``slot``: its own output folder and log file."""
    log_path = config.log_path
    if log_path:
        stem, ext = os.path.splitext(log_path)
        log_path = f"{stem}-p{slot}{ext}"
    return dataclasses.replace(config, output_dir=os.path.join(config.output_dir, f"p{slot}"),
                               log_path=log_path)


@dataclass(frozen=True)
class PoolRun:
    """One run() through the pool: its outcome, and the process's config and slot."""

    outcome: TryOutcome
    config: ScriptConfig
    slot: int


@dataclass
class _Slot:
    number: int
    worker: ScriptProcess
    key: str | None = None  # the (pool-level) config key its process serves
    busy: bool = False
    used: float = 0.0  # time.monotonic() when it was last given back


class ScriptPool:
    """Script processes of one instance: at most ``processes`` per script config, and at
    most ``max_processes`` in all (more only for a config that needs them)."""

    # An idle process of another config is taken over (its script shut down) rather than
    # a new one started once it has been idle this long: a finished job's processes go.
    IDLE_TAKEOVER_S = 30.0

    def __init__(self, *, init_timeout: float = 600.0, shutdown_timeout: float = 5.0,
                 ahead: int = 1, max_processes: int | None = None) -> None:
        if ahead < 0:
            raise ValueError(f"ahead: {ahead!r} must be 0 or more mini-batches per process")
        self.init_timeout, self.shutdown_timeout, self.ahead = (init_timeout,
                                                                shutdown_timeout, ahead)
        self.max_processes = max_processes or os.cpu_count() or 1
        self._slots: list[_Slot] = []
        self._admitted: dict[str, int] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._draining = False

    @property
    def child_pids(self) -> list[int]:
        """The pids of the live script processes."""
        with self._cond:
            workers = [s.worker for s in self._slots]
        return [pid for w in workers if (pid := w.child_pid) is not None]

    @property
    def draining(self) -> bool:
        """Whether the instance is stopping (``drain``)."""
        with self._cond:
            return self._draining

    def drain(self) -> None:
        """The instance is stopping: run()s under way finish; none starts after this, and
        ``admit`` and ``run_mini_batch`` raise PoolDraining instead of waiting or starting
        one, so their mini-batches go back to the queue untried."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    @contextmanager
    def admit(self, job_id: str, processes: int) -> Iterator[None]:
        """Hold one of the job's ``processes * (ahead + 1)`` places on this instance."""
        limit = max(1, processes) * (self.ahead + 1)
        with self._cond:
            while self._draining or self._admitted.get(job_id, 0) >= limit:
                if self._draining:
                    raise PoolDraining("the instance is stopping")
                self._cond.wait()
            self._admitted[job_id] = self._admitted.get(job_id, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                left = self._admitted[job_id] - 1
                if left:
                    self._admitted[job_id] = left
                else:
                    del self._admitted[job_id]
                self._cond.notify_all()

    def run_mini_batch(self, config: ScriptConfig, processes: int,
                       mini_batch: list[str] | TabularBatch, context: MiniBatchContext,
                       timeout: float) -> PoolRun:
        """One try of a mini-batch on a free process of ``config`` (started, and its
        ``init()`` run, when none is free and fewer than ``processes`` serve it)."""
        slot = self._acquire(config.key, max(1, processes))
        try:
            own = slot_config(config, slot.number)
            outcome = slot.worker.run_mini_batch(own, mini_batch, context, timeout)
        finally:
            with self._cond:
                slot.busy, slot.used = False, time.monotonic()
                self._cond.notify_all()
        return PoolRun(outcome, own, slot.number)

    def _acquire(self, key: str, processes: int) -> _Slot:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the script pool is closed")
                if self._draining:
                    raise PoolDraining("the instance is stopping")
                slot = self._free_slot(key, processes)
                if slot is not None:
                    slot.busy, slot.key = True, key
                    return slot
                self._cond.wait()

    def _free_slot(self, key: str, processes: int) -> _Slot | None:
        idle = [s for s in self._slots if not s.busy]
        same = [s for s in idle if s.key == key]
        if same:  # one whose process is up and init()ed, when there is one
            return min(same, key=lambda s: (s.worker.child_pid is None, s.number))
        serving = sum(s.key == key for s in self._slots)
        if serving >= processes:
            return None  # the config has all its processes: wait for one of them
        others = sorted((s for s in idle if s.key != key), key=lambda s: s.used)
        stale = [s for s in others if time.monotonic() - s.used > self.IDLE_TAKEOVER_S]
        if stale:  # its worker stops the old script before starting this one
            return stale[0]
        if len(self._slots) < max(processes, self.max_processes):
            slot = _Slot(len(self._slots), ScriptProcess(init_timeout=self.init_timeout,
                                                        shutdown_timeout=self.shutdown_timeout))
            self._slots.append(slot)
            return slot
        # Full: a config with no process at all takes one over (two jobs on one instance
        # then share it); one that has some waits for them.
        return others[0] if others and not serving else None

    def close(self) -> None:
        """Shut every process down (the scripts' shutdown()), killing those that hang."""
        with self._cond:
            self._closed = True
            slots = list(self._slots)
            self._cond.notify_all()
        for slot in slots:
            slot.worker.close()

    def __enter__(self) -> ScriptPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
