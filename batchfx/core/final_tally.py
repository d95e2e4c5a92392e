"""The one final tally of an ended job: every report is written from it (pure).

Finalize reads the job's mini-batch rows once, after the job reached its end state, and
freezes them here. ``job_result.txt``, the job view, ``progress_overview.json``,
``processed_mini-batches.csv``, ``errors.csv`` and the append_row file are all written from
this one tally, and the job view of an ended job shows the counts kept with it, so a
mini-batch that finishes after a cancel or an abort (its script was already running)
changes none of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchfx.core.progress import Action, Progress, Thresholds, decide
from batchfx.core.progress_tally import summarize
from batchfx.core.records import JobRecord, JobState, MiniBatchRecord

__all__ = ["FinalTally", "final_reason", "final_tally", "rows_not_written_note"]


@dataclass(frozen=True)
class FinalTally:
    """A job's counts as they stood when it ended, and the rows its output files hold."""

    state: JobState
    records: tuple[MiniBatchRecord, ...]  # in input order, as read once the job ended
    never_run: Mapping[int, int]  # mini-batches with no row: index -> items
    progress: Progress
    rows_written: int  # rows in the job's output files (0 unless it completed)

    @property
    def stopped(self) -> list[int]:
        """Mini-batches still running when the job ended: not counted, not written."""
        return [r.index for r in self.records if not r.status.is_final]

    @property
    def rows_not_written(self) -> int:
        """Rows that succeeded mini-batches returned but no output file holds."""
        return max(0, self.progress.rows - self.rows_written)

    def counts(self) -> dict[str, Any]:
        """What the job view of the ended job shows (kept with the job by finalize)."""
        return {**self.progress.to_dict(), "rows_written": self.rows_written,
                "mini_batches_stopped": len(self.stopped)}


def final_tally(job: JobRecord, records: Sequence[MiniBatchRecord],
                planned: Mapping[int, int], *, rows_written: int,
                elapsed_s: float) -> FinalTally:
    """Freeze ``records`` (every row of the job, read once it ended) into its tally.

    ``planned``: items of every mini-batch by index, from the manifest (those with no row
    were never run). A row not finished is counted as not run, whatever it holds.
    """
    ordered = tuple(sorted(records, key=lambda r: r.index))
    seen = {r.index for r in ordered}
    progress = summarize((r.to_entity() for r in ordered), items_total=job.items_total,
                         mini_batches_total=job.mini_batches_total,
                         partitioned=job.partitioned, elapsed_s=elapsed_s,
                         items_estimated=job.partitioning.items_estimated)
    never_run = {i: n for i, n in sorted(planned.items()) if i not in seen}
    return FinalTally(job.state, ordered, never_run, progress, rows_written)


def rows_not_written_note(final: FinalTally, output_action: str) -> str:
    """Why the output files hold fewer rows than the scripts returned (or ``""``)."""
    missing = final.rows_not_written
    if not missing:
        return ""
    if output_action == "summary_only":
        return f"{missing} rows returned; summary_only writes no output file"
    return (f"{missing} rows of succeeded mini-batches are not written: the job ended as "
            f"{final.state.value}, and only a completed job assembles its output files "
            "(processed_mini-batches.csv lists the mini-batches that succeeded)")


def final_reason(job: JobRecord, final: FinalTally) -> str:
    """The reason an aborted job shows, counted as its reports count (mini-batches running
    when the limit was crossed may have failed too); other jobs keep theirs."""
    if job.state is not JobState.ABORTED:
        return job.reason
    verdict = decide(final.progress, Thresholds.from_spec(job.spec))
    return verdict.reason if verdict.action is Action.ABORT else job.reason
