"""Moving a job between states: one ETag-conditional write (``transition_job``), and the
named transitions the services make with it, each setting exactly the values it names."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

from batchfx.core.errors import ConflictError, JobNotFoundError, JobStateError
from batchfx.core.job_details import Outcome, Partitioning, Reuse
from batchfx.core.records import JobRecord, JobState, utc_now
from batchfx.storage import Storage

__all__ = [
    "Change",
    "end_job",
    "end_partitioning",
    "keep_outcome",
    "keep_reuse_key",
    "next_input",
    "reuse_earlier",
    "save_page",
    "start_finalizing",
    "start_partitioning",
    "transition_job",
]

Change = Callable[[JobRecord], None]
"""What a transition sets on the job's record as read just before its write."""

# The states in which the partitioner saves where it stands.
_LISTING = (JobState.PARTITIONING, JobState.RUNNING)


def transition_job(
    storage: Storage,
    job_id: str,
    to: JobState,
    *,
    allowed_from: Iterable[JobState] | None = None,
    change: Change | None = None,
) -> JobRecord:
    """Move a job to ``to`` (and apply ``change`` to it) unless its state forbids it.

    The write is conditional on the row's ETag, so a cancel and the orchestrator never
    overwrite each other's decision; a lost race is read again and re-checked (and
    ``change`` applied again, to the row read). Already in ``to`` with no ``change``:
    nothing is written. A final state sets ``ended``.
    """
    allowed = set(allowed_from) if allowed_from is not None else None
    for _ in range(20):
        found = storage.tables.get(storage.settings.jobs_table, JobRecord.PARTITION, job_id)
        if found is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        job = JobRecord.from_entity(found.values)
        if job.state is to and change is None:
            return job
        if allowed is not None and job.state not in allowed:
            raise JobStateError(f"job {job_id} is {job.state.value}; cannot become {to.value}")
        job.state = to
        if change is not None:
            change(job)
        if to.is_final and not job.ended:
            job.ended = utc_now()
        try:
            storage.tables.replace(storage.settings.jobs_table, job.to_entity(), etag=found.etag)
            return job
        except ConflictError:
            time.sleep(0.01)
    raise ConflictError(f"job {job_id}: too many concurrent updates")


def start_partitioning(storage: Storage, job_id: str) -> JobRecord:
    """queued → partitioning, noting when the job started."""
    started = utc_now()

    def change(job: JobRecord) -> None:
        job.started = started

    return transition_job(storage, job_id, JobState.PARTITIONING,
                          allowed_from=[JobState.QUEUED], change=change)


def keep_reuse_key(storage: Storage, job_id: str, key: str) -> JobRecord:
    """Note the job's allow_reuse key (no earlier job's results to reuse); still
    partitioning."""
    def change(job: JobRecord) -> None:
        job.reuse = dataclasses.replace(job.reuse, key=key)

    return transition_job(storage, job_id, JobState.PARTITIONING,
                          allowed_from=[JobState.PARTITIONING], change=change)


def reuse_earlier(storage: Storage, job_id: str, key: str, earlier: JobRecord) -> JobRecord:
    """partitioning → running, partitioned as the earlier identical job was (its totals),
    its results to be copied when the job is finalized."""
    def change(job: JobRecord) -> None:
        job.reuse = Reuse(key=key, reused_from=earlier.job_id)
        if earlier.partitioning.items_estimated:
            job.partitioning = dataclasses.replace(job.partitioning, items_estimated=True)
        job.partitioned = True
        job.items_total = earlier.items_total
        job.mini_batches_total = earlier.mini_batches_total

    return transition_job(storage, job_id, JobState.RUNNING,
                          allowed_from=[JobState.PARTITIONING], change=change)


def save_page(storage: Storage, job_id: str, partitioning: Partitioning, *,
              mini_batches_total: int, items_total: int, continuation: str) -> JobRecord:
    """Where partitioning stands once a page's messages are out: running once the job has
    a mini-batch, still partitioning before."""
    def change(job: JobRecord) -> None:
        job.partitioning = partitioning
        job.mini_batches_total = mini_batches_total
        job.items_total = items_total
        job.continuation = continuation

    to = JobState.RUNNING if mini_batches_total else JobState.PARTITIONING
    return transition_job(storage, job_id, to, allowed_from=_LISTING, change=change)


def next_input(storage: Storage, job_id: str, state: JobState,
               partitioning: Partitioning) -> JobRecord:
    """One input is listed: the next is listed from its start (the state stays ``state``)."""
    def change(job: JobRecord) -> None:
        job.partitioning = partitioning
        job.continuation = ""

    return transition_job(storage, job_id, state, allowed_from=_LISTING, change=change)


def end_partitioning(storage: Storage, job_id: str) -> JobRecord:
    """Every input is listed: the job is partitioned, and running."""
    def change(job: JobRecord) -> None:
        job.partitioned = True

    return transition_job(storage, job_id, JobState.RUNNING, allowed_from=_LISTING,
                          change=change)


def start_finalizing(storage: Storage, job_id: str, *,
                     allowed_from: Iterable[JobState]) -> JobRecord:
    """→ finalizing (a job already finalizing is left as it is)."""
    return transition_job(storage, job_id, JobState.FINALIZING, allowed_from=allowed_from)


def end_job(storage: Storage, job_id: str, to: JobState, *, reason: str,
            allowed_from: Iterable[JobState], error: str | None = None) -> JobRecord:
    """End the job as ``to``, saying why (``error``: its error text too, else kept)."""
    def change(job: JobRecord) -> None:
        job.reason = reason
        if error is not None:
            job.error = error

    return transition_job(storage, job_id, to, allowed_from=allowed_from, change=change)


def keep_outcome(storage: Storage, job_id: str, state: JobState, outcome: Outcome, *,
                 reason: str | None = None) -> JobRecord:
    """Keep what finalize found with the ended job (and ``reason``, when its final tally
    changed it); the state is written as ``state``, whatever it is now."""
    def change(job: JobRecord) -> None:
        job.outcome = outcome
        if reason is not None:
            job.reason = reason

    return transition_job(storage, job_id, state, change=change)
