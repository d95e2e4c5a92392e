"""A job always ends: finalize that cannot assemble the output, or cannot write a report,
ends the job saying why instead of leaving it finalizing (clients wait on outputs_ready)."""

from __future__ import annotations

import pytest
from job_helpers import spec_for, upload_inputs

from batchfx.core.records import JobState
from batchfx.services import finalize
from batchfx.services.finalize import finalize_job
from batchfx.services.jobs import get_job, submit_job
from batchfx.services.partitioner import partition_job
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


def _partitioned_job(storage: Storage, data: str) -> str:
    upload_inputs(storage, data, [1, 1, 1])
    job = submit_job(storage, spec_for(data, output=f"{data}/results"))
    assert partition_job(storage, job.job_id).done
    return job.job_id


def _break(monkeypatch: pytest.MonkeyPatch, name: str, error: Exception) -> None:
    """Make finalize's ``name`` raise ``error``."""
    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(finalize, name, broken)


def test_an_output_that_cannot_be_assembled_fails_the_job_with_the_reason(
        storage: Storage, data: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _partitioned_job(storage, data)
    _break(monkeypatch, "write_job_outputs",
           ValueError("a part of the rows is not what was written"))
    assert finalize_job(storage, job_id, JobState.COMPLETED) == "failed"
    job = get_job(storage, job_id)
    assert job.reason == ("assembling the output failed: ValueError: a part of the rows is "
                          "not what was written")
    assert job.outcome.outputs_ready is True


def test_a_report_that_cannot_be_written_still_ends_the_job_and_says_so(
        storage: Storage, data: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _partitioned_job(storage, data)
    _break(monkeypatch, "processed_mini_batches_csv",
           UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed"))
    assert finalize_job(storage, job_id, JobState.CANCELED, "canceled by the user") == "canceled"
    job = get_job(storage, job_id)
    assert job.outcome.outputs_ready is True
    assert job.outcome.reports_error.startswith("UnicodeEncodeError:")


def test_a_manifest_that_cannot_be_read_still_ends_the_job_with_its_counts(
        storage: Storage, data: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _partitioned_job(storage, data)
    _break(monkeypatch, "parse_manifest_line", ValueError("manifest line 3 is not JSON"))
    assert finalize_job(storage, job_id, JobState.CANCELED, "canceled by the user") == "canceled"
    job = get_job(storage, job_id)
    assert job.outcome.outputs_ready is True
    assert job.outcome.final is not None
    assert job.outcome.final["mini_batches"]["total"] == job.mini_batches_total
