"""Pure progress arithmetic and the orchestrator's decision: wait, finalize, abort or fail."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["MIN_CHECK_S", "Action", "Progress", "Thresholds", "Verdict", "decide",
           "init_error_text", "next_check_s"]

# The shortest wait between two checks of a job about to finish.
MIN_CHECK_S = 0.25


@dataclass(frozen=True)
class Thresholds:
    """The failure limits of a job, with Azure ML's meaning (-1 / 100 = ignore)."""

    error_threshold: int = -1
    allowed_failed_count: int = -1
    allowed_failed_percent: float = 100.0

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Thresholds:
        """Read the limits out of a stored job spec."""
        return cls(
            int(spec.get("error_threshold", -1)),
            int(spec.get("allowed_failed_count", -1)),
            float(spec.get("allowed_failed_percent", 100)),
        )


@dataclass(frozen=True)
class Progress:
    """Counts of a job, summed from its mini-batch rows (never kept in a shared counter;
    see ``progress_tally``)."""

    items_total: int
    mini_batches_total: int
    partitioned: bool
    mini_batches_succeeded: int = 0
    mini_batches_failed: int = 0
    mini_batches_running: int = 0
    items_succeeded: int = 0
    items_failed: int = 0
    rows: int = 0
    init_error: str = ""
    elapsed_s: float = 0.0
    # True while items_total is partly estimated (tabular text cut by bytes: rows are
    # counted as mini-batches are read); exact once every mini-batch is done.
    items_estimated: bool = False

    @property
    def mini_batches_done(self) -> int:
        """Mini-batches that will not be tried again."""
        return self.mini_batches_succeeded + self.mini_batches_failed

    @property
    def mini_batches_pending(self) -> int:
        """Mini-batches not finished yet (queued or running)."""
        return max(0, self.mini_batches_total - self.mini_batches_done)

    @property
    def items_done(self) -> int:
        """Items whose mini-batch is finished."""
        return self.items_succeeded + self.items_failed

    @property
    def items_pending(self) -> int:
        """Items not finished yet."""
        return max(0, self.items_total - self.items_done)

    @property
    def all_done(self) -> bool:
        """Every mini-batch is scheduled and finished."""
        return self.partitioned and self.mini_batches_done >= self.mini_batches_total

    @property
    def items_per_second(self) -> float:
        """Throughput since the job started."""
        return self.items_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current throughput; None until there is one."""
        if self.all_done:
            return 0.0
        rate = self.items_per_second
        if rate <= 0 or not self.partitioned:
            return None
        return self.items_pending / rate

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shown by ``GET /api/jobs/{id}``."""
        eta = self.eta_s
        return {
            "items": {
                "total": self.items_total,
                "succeeded": self.items_succeeded,
                "failed": self.items_failed,
                "pending": self.items_pending,
            },
            "mini_batches": {
                "total": self.mini_batches_total,
                "succeeded": self.mini_batches_succeeded,
                "failed": self.mini_batches_failed,
                "running": self.mini_batches_running,
                "pending": self.mini_batches_pending,
            },
            "items_estimated": self.items_estimated,
            "rows": self.rows,
            "partitioned": self.partitioned,
            "items_per_second": round(self.items_per_second, 3),
            "eta_seconds": None if eta is None else round(eta, 1),
            "elapsed_seconds": round(self.elapsed_s, 3),
        }


def init_error_text(row: dict[str, Any]) -> str:
    """The job's error when a row failed in init() or loading the script (fails the job)."""
    what = "init()" if row.get("error_phase") == "init" else "loading the entry script"
    return (
        f"{what} failed on worker {row.get('worker', '?')} after {row.get('tries', '?')} "
        f"tries: {row.get('error_type', '')}: {row.get('error_message', '')}\n"
        f"{row.get('error_traceback', '')}"
    )


class Action(StrEnum):
    """What the orchestrator does next."""

    WAIT = "wait"
    FINALIZE = "finalize"
    ABORT = "abort"
    FAIL = "fail"
    END = "end"  # the job has ended already (canceled): write its outputs as it stands


@dataclass(frozen=True)
class Verdict:
    """A decision and, for abort/fail, why."""

    action: Action
    reason: str = ""


def decide(progress: Progress, limits: Thresholds) -> Verdict:
    """Apply the SPEC's failure rules; a limit is broken only when the count *exceeds* it."""
    if progress.init_error:
        return Verdict(Action.FAIL, progress.init_error)
    failed_items, failed_batches = progress.items_failed, progress.mini_batches_failed
    if limits.error_threshold != -1 and failed_items > limits.error_threshold:
        return Verdict(
            Action.ABORT,
            f"{failed_items} failed items exceed error_threshold={limits.error_threshold}",
        )
    if limits.allowed_failed_count != -1 and failed_batches > limits.allowed_failed_count:
        return Verdict(
            Action.ABORT,
            f"{failed_batches} failed mini-batches exceed "
            f"allowed_failed_count={limits.allowed_failed_count}",
        )
    # Azure ML checks the percentage only once every mini-batch is scheduled.
    if progress.partitioned and progress.mini_batches_total and limits.allowed_failed_percent < 100:
        percent = 100.0 * failed_batches / progress.mini_batches_total
        if percent > limits.allowed_failed_percent:
            return Verdict(
                Action.ABORT,
                f"{failed_batches} of {progress.mini_batches_total} mini-batches failed "
                f"({percent:.1f}%), exceeding allowed_failed_percent="
                f"{limits.allowed_failed_percent:g}",
            )
    if progress.partitioned and progress.mini_batches_total == 0:
        return Verdict(Action.FAIL, "the inputs matched no files: nothing to score")
    if progress.all_done:
        return Verdict(Action.FINALIZE)
    return Verdict(Action.WAIT)


def next_check_s(progress: Progress, poll_s: float) -> float:
    """When to look at a job again: after the poll interval, or sooner once every
    mini-batch left is under way (half the time left, at least ``MIN_CHECK_S``), so that a
    job is finalized soon after its last mini-batch."""
    pending, running = progress.mini_batches_pending, progress.mini_batches_running
    eta = progress.eta_s
    if not progress.partitioned or not pending or pending > running or eta is None:
        return poll_s
    return min(poll_s, max(MIN_CHECK_S, eta / 2))
