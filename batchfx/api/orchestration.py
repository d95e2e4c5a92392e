"""The job orchestrator and its activities: partition, check progress, finalize."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import azure.durable_functions as df

from batchfx.api import context as app_context
from batchfx.core.progress import Action, Thresholds, decide, next_check_s
from batchfx.core.records import JobState
from batchfx.core.watch_steps import (
    CheckResult,
    EndRequest,
    PartitionStep,
    WatchState,
    next_step,
)
from batchfx.services.finalize import finalize_job, write_progress_overview
from batchfx.services.jobs import get_job, job_progress
from batchfx.services.partitioner import partition_job

bp = df.Blueprint()

# Activities touch storage; a transient error must cost a retry, never the orchestration
# (a failed orchestration leaves its job "running" forever).
_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=10)

_OUTCOMES = {Action.FINALIZE: JobState.COMPLETED, Action.ABORT: JobState.ABORTED,
             Action.FAIL: JobState.FAILED}


@bp.orchestration_trigger(context_name="context")
def watch_job(context: df.DurableOrchestrationContext) -> Any:
    """Partition, then poll progress until pure rules say finalize, abort or fail; the
    decisions are ``watch_steps``'s, this generator carries them out.

    Each poll ends in continue_as_new so the history stays small however long the job.
    """
    state = WatchState.from_input(context.get_input())
    now = context.current_utc_datetime
    if now.tzinfo is None:  # the SDK parses the host's timestamp as it comes
        now = now.replace(tzinfo=UTC)
    if state.wants_partition():
        result = yield context.call_activity_with_retry("partition_inputs", _RETRY,
                                                        state.job_id)
        if state.partitioned_by(PartitionStep.from_activity(result), now):
            context.continue_as_new(state.to_input())
            return None
    try:
        found = yield context.call_activity_with_retry("check_job", _RETRY, state.job_id)
        check = CheckResult.from_activity(found)
    except Exception:  # storage unreachable past the retries: a missed poll, not a failed job
        check = CheckResult(Action.WAIT)
    decision = next_step(state, check, now)
    if decision.end is None:
        if decision.timer_at is not None:
            yield context.create_timer(decision.timer_at)
        context.continue_as_new(state.to_input())
        return None
    final = yield context.call_activity_with_retry("end_job", _RETRY, decision.end)
    return {"job_id": state.job_id, "state": final}


@bp.activity_trigger(input_name="jobid")
def partition_inputs(jobid: str) -> dict[str, Any]:
    """List inputs for a while and enqueue their mini-batches; ``done`` when all are out."""
    storage = app_context.storage()
    window = storage.settings.queue_window
    result = partition_job(storage, jobid, max_mini_batches=window)
    return PartitionStep(result.done, result.mini_batches, result.items, window).to_activity()


@bp.activity_trigger(input_name="jobid")
def check_job(jobid: str) -> dict[str, Any]:
    """Count the mini-batch rows written since the last check and decide: wait, or end the
    job as what, and why (a job that looks finished is confirmed by reading every row)."""
    storage = app_context.storage()
    job = get_job(storage, jobid)
    if job.state.is_final:  # canceled (or ended by an earlier execution)
        return CheckResult(Action.END, job.state.value, job.reason).to_activity()
    progress = job_progress(storage, job, keep=True)
    verdict = decide(progress, Thresholds.from_spec(job.spec))
    if verdict.action is Action.FINALIZE:  # every row read once more, to be exact
        progress = job_progress(storage, job, keep=True, full=True)
        verdict = decide(progress, Thresholds.from_spec(job.spec))
    if verdict.action is Action.WAIT:
        write_progress_overview(storage, job, progress)
        wait_s = next_check_s(progress, storage.settings.poll_interval_s)
        return CheckResult(Action.WAIT, wait_s=wait_s,
                           backlog=progress.mini_batches_pending).to_activity()
    return CheckResult(verdict.action, _OUTCOMES[verdict.action].value,
                       verdict.reason).to_activity()


@bp.activity_trigger(input_name="request")
def end_job(request: EndRequest) -> str:
    """Write the outputs and reports and set the job's final state."""
    return finalize_job(app_context.storage(), request["job_id"],
                        JobState(request["outcome"]), request.get("reason", ""))
