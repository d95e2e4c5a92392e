"""Cancel, get and state transitions of a job against a real Azurite, races included."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from job_helpers import spec_for, upload_inputs

from batchfx.core.errors import JobNotFoundError, JobStateError
from batchfx.core.records import JobRecord, JobState
from batchfx.services.job_transitions import Change, end_job, start_finalizing, transition_job
from batchfx.services.jobs import cancel_job, get_job, submit_job
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


def _reason(reason: str) -> Change:
    def change(job: JobRecord) -> None:
        job.reason = reason

    return change


def test_cancel_marks_the_job_canceled_with_a_reason_and_end_time(storage: Storage,
                                                                  data: str) -> None:
    upload_inputs(storage, data, [1])
    job = submit_job(storage, spec_for(data))
    canceled = cancel_job(storage, job.job_id)
    stored = get_job(storage, job.job_id)
    assert stored.state is canceled.state is JobState.CANCELED
    assert stored.reason == "canceled by request"
    assert stored.ended


@pytest.mark.parametrize("end", [JobState.COMPLETED, JobState.FAILED, JobState.ABORTED,
                                 JobState.CANCELED])
def test_cancel_of_a_finished_job_raises_job_state_error(storage: Storage, data: str,
                                                         end: JobState) -> None:
    upload_inputs(storage, data, [1])
    job = submit_job(storage, spec_for(data))
    transition_job(storage, job.job_id, end, change=_reason("done"))
    with pytest.raises(JobStateError, match=f"already ended as {end.value}"):
        cancel_job(storage, job.job_id)
    assert get_job(storage, job.job_id).reason == "done"


def test_cancel_of_an_unknown_job_raises_not_found(storage: Storage) -> None:
    with pytest.raises(JobNotFoundError, match="nobody"):
        cancel_job(storage, "nobody")


def test_get_of_an_unknown_job_raises_not_found(storage: Storage) -> None:
    with pytest.raises(JobNotFoundError, match="nobody"):
        get_job(storage, "nobody")


def test_transition_refused_after_another_transition_sees_its_state(storage: Storage,
                                                                    data: str) -> None:
    upload_inputs(storage, data, [1])
    job = submit_job(storage, spec_for(data))
    transition_job(storage, job.job_id, JobState.ABORTED, allowed_from=[JobState.QUEUED])
    with pytest.raises(JobStateError, match="aborted"):
        transition_job(storage, job.job_id, JobState.COMPLETED, allowed_from=[JobState.QUEUED])


def test_racing_transitions_let_exactly_one_win(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1])
    job = submit_job(storage, spec_for(data))
    ends = [JobState.COMPLETED, JobState.FAILED, JobState.ABORTED, JobState.CANCELED] * 2
    barrier = threading.Barrier(len(ends))

    def attempt(end: JobState) -> JobState | None:
        barrier.wait()
        try:
            return transition_job(storage, job.job_id, end, allowed_from=[JobState.QUEUED],
                                  change=_reason(f"by {end.value}")).state
        except JobStateError:
            return None

    with ThreadPoolExecutor(len(ends)) as pool:
        results = list(pool.map(attempt, ends))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stored = get_job(storage, job.job_id)
    assert stored.state is winners[0]
    assert stored.reason == f"by {winners[0].value}"


def test_racing_transitions_without_a_state_check_all_succeed_after_retries(
    storage: Storage, data: str
) -> None:
    upload_inputs(storage, data, [1])
    job = submit_job(storage, spec_for(data))
    reasons = [f"writer {i}" for i in range(6)]
    barrier = threading.Barrier(len(reasons))

    def attempt(reason: str) -> str:
        barrier.wait()
        # a lost ETag race is read again and retried, never raised to the caller
        return transition_job(storage, job.job_id, JobState.RUNNING,
                              change=_reason(reason)).reason

    with ThreadPoolExecutor(len(reasons)) as pool:
        written = list(pool.map(attempt, reasons))
    assert written == reasons
    assert get_job(storage, job.job_id).reason in reasons


def test_transition_to_a_final_state_sets_ended(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1])
    job = submit_job(storage, spec_for(data))
    assert not job.ended
    assert transition_job(storage, job.job_id, JobState.COMPLETED).ended


def test_transition_applies_column_changes(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1])
    job = submit_job(storage, spec_for(data))
    def change(record: JobRecord) -> None:
        record.items_total, record.reason = 42, "why"

    transition_job(storage, job.job_id, JobState.RUNNING, change=change)
    stored = get_job(storage, job.job_id)
    assert (stored.state, stored.items_total, stored.reason) == (JobState.RUNNING, 42, "why")


def test_transition_of_an_unknown_job_raises_not_found(storage: Storage) -> None:
    with pytest.raises(JobNotFoundError):
        transition_job(storage, "nobody", JobState.RUNNING)


def test_a_transition_to_the_state_the_job_is_in_without_changes_writes_nothing(
        storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1])
    job = submit_job(storage, spec_for(data))
    start_finalizing(storage, job.job_id, allowed_from=[JobState.QUEUED])
    table = storage.settings.jobs_table
    before = storage.tables.get(table, JobRecord.PARTITION, job.job_id)
    again = start_finalizing(storage, job.job_id, allowed_from=[JobState.QUEUED])
    after = storage.tables.get(table, JobRecord.PARTITION, job.job_id)
    assert again.state is JobState.FINALIZING
    assert before is not None and after is not None and before.etag == after.etag


def test_ending_a_job_keeps_its_error_unless_given_one(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1])
    first = submit_job(storage, spec_for(data))
    second = submit_job(storage, spec_for(data))
    end_job(storage, first.job_id, JobState.ABORTED, reason="too many failed",
            allowed_from=[JobState.QUEUED])
    end_job(storage, second.job_id, JobState.FAILED, reason="bad input", error="bad input",
            allowed_from=[JobState.QUEUED])
    aborted, failed = get_job(storage, first.job_id), get_job(storage, second.job_id)
    assert (aborted.reason, aborted.error, bool(aborted.ended)) == ("too many failed", "", True)
    assert (failed.reason, failed.error) == ("bad input", "bad input")
