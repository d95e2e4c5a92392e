"""The job orchestrator and its activities: partition, check progress, finalize."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df

from batchfx import app_context
from batchfx.finalize import finalize_job, write_progress_overview
from batchfx.jobs import get_job, job_progress
from batchfx.partitioner import partition_job
from batchfx.progress import Action, Thresholds, decide, next_check_s
from batchfx.records import JobState
from batchfx.settings import Settings

bp = df.Blueprint()

# Activities touch storage; a transient error must cost a retry, never the orchestration
# (a failed orchestration leaves its job "running" forever).
_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=10)

# Mini-batches queued and not finished that make partitioning wait (the default of the
# BATCHFX_QUEUE_WINDOW setting): a queue of tens of thousands of messages gains nothing
# (workers take one at a time) and slows Azurite's dequeues (each scans the queue: 6.6 ms
# receive+delete at 200 messages, 22.4 ms at 2,000, measured). The orchestrator never
# reads settings (it must replay the same): partition_inputs returns the window it used.
QUEUE_WINDOW = Settings.queue_window

_OUTCOMES = {Action.FINALIZE: JobState.COMPLETED, Action.ABORT: JobState.ABORTED,
             Action.FAIL: JobState.FAILED}


@bp.orchestration_trigger(context_name="context")
def watch_job(context: df.DurableOrchestrationContext) -> Any:
    """Partition, then poll progress until pure rules say finalize, abort or fail.

    Each poll ends in continue_as_new so the history stays small however long the job.
    """
    state = dict(context.get_input() or {})
    job_id = state["job_id"]
    now = context.current_utc_datetime
    if now.tzinfo is None:  # the SDK parses the host's timestamp as it comes
        now = now.replace(tzinfo=UTC)
    if not state.get("partitioned") and int(state.get("backlog", 0)) < _window(state):
        result = yield context.call_activity_with_retry("partition_inputs", _RETRY, job_id)
        state["window"] = int(result.get("window", _window(state)))
        state["partitioned"] = bool(result["done"])
        queued = int(result["mini_batches"])
        state["backlog"] = int(state.get("backlog", 0)) + queued - int(state.get("queued", 0))
        state["queued"] = queued
        # Progress is summed from every mini-batch row: between partition steps only once
        # a poll interval has passed, or a big job's checks would crowd out its scoring.
        if (not state["partitioned"] and state["backlog"] < _window(state)
                and now < _parse(state.get("next_check"))):
            context.continue_as_new(state)
            return None
    try:
        check = yield context.call_activity_with_retry("check_job", _RETRY, job_id)
    except Exception:  # storage unreachable past the retries: a missed poll, not a failed job
        check = {"action": Action.WAIT.value}
    if check["action"] == Action.WAIT.value:
        wait = timedelta(seconds=float(check.get("wait_s") or state.get("poll_s", 5)))
        state["next_check"] = (now + wait).isoformat()
        state["backlog"] = int(check.get("backlog", state.get("backlog", 0)))
        if state["partitioned"] or state["backlog"] >= _window(state):
            yield context.create_timer(now + wait)
        context.continue_as_new(state)
        return None
    request = {"job_id": job_id, "outcome": check["outcome"], "reason": check["reason"]}
    final = yield context.call_activity_with_retry("end_job", _RETRY, request)
    return {"job_id": job_id, "state": final}


def _window(state: dict[str, Any]) -> int:
    """The queue window partitioning last used (the default before its first step)."""
    return int(state.get("window", QUEUE_WINDOW))


def _parse(moment: str | None) -> datetime:
    if not moment:
        return datetime.min.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(moment)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@bp.activity_trigger(input_name="jobid")
def partition_inputs(jobid: str) -> dict[str, Any]:
    """List inputs for a while and enqueue their mini-batches; ``done`` when all are out."""
    storage = app_context.storage()
    window = storage.settings.queue_window
    result = partition_job(storage, jobid, max_mini_batches=window)
    return {"done": result.done, "mini_batches": result.mini_batches, "items": result.items,
            "window": window}


@bp.activity_trigger(input_name="jobid")
def check_job(jobid: str) -> dict[str, Any]:
    """Count the mini-batch rows written since the last check and decide: wait, or end the
    job as what, and why (a job that looks finished is confirmed by reading every row)."""
    storage = app_context.storage()
    job = get_job(storage, jobid)
    if job.state.is_final:  # canceled (or ended by an earlier execution)
        return {"action": "end", "outcome": job.state.value, "reason": job.reason}
    progress = job_progress(storage, job, keep=True)
    verdict = decide(progress, Thresholds.from_spec(job.spec))
    if verdict.action is Action.FINALIZE:  # every row read once more, to be exact
        progress = job_progress(storage, job, keep=True, full=True)
        verdict = decide(progress, Thresholds.from_spec(job.spec))
    if verdict.action is Action.WAIT:
        write_progress_overview(storage, job, progress)
        wait_s = next_check_s(progress, storage.settings.poll_interval_s)
        return {"action": Action.WAIT.value, "outcome": "", "reason": "", "wait_s": wait_s,
                "backlog": progress.mini_batches_pending}
    return {"action": verdict.action.value, "outcome": _OUTCOMES[verdict.action].value,
            "reason": verdict.reason}


@bp.activity_trigger(input_name="request")
def end_job(request: dict[str, Any]) -> str:
    """Write the outputs and reports and set the job's final state."""
    return finalize_job(app_context.storage(), request["job_id"],
                        JobState(request["outcome"]), request.get("reason", ""))
