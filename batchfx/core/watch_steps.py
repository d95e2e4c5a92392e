"""The job orchestrator's state and decisions, pure: what ``watch_job`` carries from one
execution to the next (``WatchState``), what its activities answer (``PartitionStep``,
``CheckResult``) and what it does next (``next_step``). The generator only carries the
decisions out, so they are tested without the Durable SDK; the state crosses
``continue_as_new`` as the same JSON object as before (older executions resume).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from batchfx.core.progress import Action
from batchfx.core.settings import Settings

__all__ = ["QUEUE_WINDOW", "CheckResult", "Decision", "EndRequest", "PartitionStep",
           "WatchState", "next_step"]

# Mini-batches queued and not finished that make partitioning wait (the default of the
# BATCHFX_QUEUE_WINDOW setting): a queue of tens of thousands of messages gains nothing
# (workers take one at a time) and slows Azurite's dequeues (each scans the queue: 6.6 ms
# receive+delete at 200 messages, 22.4 ms at 2,000, measured). The orchestrator never
# reads settings (it must replay the same): partition_inputs returns the window it used.
QUEUE_WINDOW = Settings.queue_window


@dataclass(frozen=True)
class PartitionStep:
    """What one ``partition_inputs`` call did."""

    done: bool
    mini_batches: int  # queued so far, in all
    items: int = 0
    window: int = QUEUE_WINDOW  # the queue window the activity used

    @classmethod
    def from_activity(cls, data: dict[str, Any]) -> PartitionStep:
        return cls(bool(data["done"]), int(data["mini_batches"]), int(data.get("items", 0)),
                   int(data.get("window", QUEUE_WINDOW)))

    def to_activity(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckResult:
    """What ``check_job`` found: wait (how long, how many mini-batches are left), or end
    the job as ``outcome`` (a job state) and why."""

    action: Action
    outcome: str = ""
    reason: str = ""
    wait_s: float | None = None
    backlog: int | None = None

    @classmethod
    def from_activity(cls, data: dict[str, Any]) -> CheckResult:
        wait_s, backlog = data.get("wait_s"), data.get("backlog")
        return cls(Action(data["action"]), str(data.get("outcome") or ""),
                   str(data.get("reason") or ""),
                   None if wait_s is None else float(wait_s),
                   None if backlog is None else int(backlog))

    def to_activity(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.action.value, "outcome": self.outcome,
                                "reason": self.reason}
        if self.wait_s is not None:
            data["wait_s"] = self.wait_s
        if self.backlog is not None:
            data["backlog"] = self.backlog
        return data


@dataclass
class WatchState:
    """What the orchestration carries across ``continue_as_new``."""

    job_id: str
    poll_s: float = 5.0
    partitioned: bool = False
    backlog: int = 0  # mini-batches queued and not finished, as last seen
    queued: int = 0  # mini-batches queued, in all
    window: int = QUEUE_WINDOW
    next_check: str = ""  # ISO time of the next progress check ("": at once)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_input(cls, data: dict[str, Any] | None) -> WatchState:
        data = dict(data or {})
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: data.pop(k) for k in list(data) if k in known}
        state = cls(**values, extra=data)
        state.poll_s, state.window = float(state.poll_s), int(state.window)
        state.backlog, state.queued = int(state.backlog), int(state.queued)
        state.partitioned = bool(state.partitioned)
        return state

    def to_input(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        return {**self.extra, **data}

    def wants_partition(self) -> bool:
        """Whether to list more inputs now: not all out, and the queue below the window."""
        return not self.partitioned and self.backlog < self.window

    def partitioned_by(self, step: PartitionStep, now: datetime) -> bool:
        """Take a partition step in; True when the next one comes before any progress check
        (the queue has room and no poll interval has passed: progress is summed from every
        mini-batch row, so a big job's checks must not crowd out its scoring)."""
        self.window = step.window
        self.partitioned = step.done
        self.backlog += step.mini_batches - self.queued
        self.queued = step.mini_batches
        return (not self.partitioned and self.backlog < self.window
                and now < _parse(self.next_check))


class EndRequest(TypedDict):
    """The ``end_job`` activity's input: the job, the state it ends in, and why."""

    job_id: str
    outcome: str  # a final JobState's value
    reason: str


@dataclass(frozen=True)
class Decision:
    """What the generator does after a check: wait for a timer (or not) and go on as new,
    or end the job with ``end`` (the ``end_job`` activity's request)."""

    timer_at: datetime | None = None
    end: EndRequest | None = None


def next_step(state: WatchState, check: CheckResult, now: datetime) -> Decision:
    """After a progress check: end the job, or wait — with a timer once partitioning is
    done or the queue is full, at once otherwise (the next execution partitions more)."""
    if check.action is not Action.WAIT:
        return Decision(end=EndRequest(job_id=state.job_id, outcome=check.outcome,
                                       reason=check.reason))
    wait = timedelta(seconds=check.wait_s if check.wait_s else state.poll_s)
    state.next_check = (now + wait).isoformat()
    if check.backlog is not None:
        state.backlog = check.backlog
    timer = state.partitioned or state.backlog >= state.window
    return Decision(timer_at=now + wait if timer else None)


def _parse(moment: str) -> datetime:
    if not moment:
        return datetime.min.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(moment)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
