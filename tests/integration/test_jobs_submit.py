"""Submitting a job against a real Azurite: the job row, its id, and refused specs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from job_helpers import job_rows, spec_for, upload_inputs

from batchfx.core.errors import SpecError
from batchfx.core.records import JobState
from batchfx.services.jobs import get_job, new_job_id, submit_job
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


def test_submit_records_a_queued_job(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1, 2, 3])
    job = submit_job(storage, spec_for(data, mini_batch_size=2), client_request_id="req-7")
    assert job.state is JobState.QUEUED
    stored = get_job(storage, job.job_id)
    assert stored == job
    assert stored.spec["mini_batch_size"] == 2
    assert stored.client_request_id == "req-7"
    assert stored.output_location == f"{data}/results/{job.job_id}"


def test_submit_gives_each_job_a_new_id_from_its_name(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1])
    first = submit_job(storage, spec_for(data))
    second = submit_job(storage, spec_for(data))
    assert first.job_id != second.job_id
    assert re.fullmatch(r"digits-\d{8}t\d{6}-[0-9a-f]{6}", first.job_id)


def test_submit_creates_the_output_container(storage: Storage, data: str,
                                             unique_name: str) -> None:
    upload_inputs(storage, data, [1])
    out = unique_name + "out"
    submit_job(storage, spec_for(data, output=f"{out}/results"))
    assert storage.blobs.container_exists(out)


def test_submit_summary_only_writes_outputs_to_the_jobs_container(storage: Storage,
                                                                  data: str) -> None:
    upload_inputs(storage, data, [1])
    spec = spec_for(data, output_action="summary_only")
    del spec["output"]
    job = submit_job(storage, spec)
    assert job.output_container == storage.settings.jobs_container


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"mini_batchsize": 10}, "mini_batch_size"),  # unknown key, with a hint
        ({"error_threshold": -2}, "error_threshold"),
    ],
)
def test_submit_of_a_bad_spec_raises_and_writes_no_job(storage: Storage, data: str,
                                                       changes: dict[str, Any],
                                                       named: str) -> None:
    upload_inputs(storage, data, [1])
    before = len(job_rows(storage))
    with pytest.raises(SpecError) as info:
        submit_job(storage, spec_for(data, **changes))
    assert any(named in p for p in info.value.problems)
    assert len(job_rows(storage)) == before


def test_submit_with_a_missing_input_container_raises_and_writes_no_job(
    storage: Storage, data: str, unique_name: str
) -> None:
    missing = unique_name + "nope"
    with pytest.raises(SpecError) as info:
        submit_job(storage, spec_for(data, inputs=f"{missing}/inputs"))
    (problem,) = info.value.problems
    assert problem.startswith("inputs.path:") and missing in problem
    assert job_rows(storage) == []


def test_submit_with_a_missing_entry_script_raises_and_writes_no_job(storage: Storage,
                                                                     data: str) -> None:
    upload_inputs(storage, data, [1])
    with pytest.raises(SpecError) as info:
        submit_job(storage, spec_for(data, entry_script="other.py"))
    (problem,) = info.value.problems
    assert problem.startswith("entry_script:") and "other.py" in problem
    assert job_rows(storage) == []


def test_submit_with_empty_inputs_raises_and_writes_no_job(storage: Storage, data: str) -> None:
    with pytest.raises(SpecError) as info:
        submit_job(storage, spec_for(data))
    (problem,) = info.value.problems
    assert problem.startswith("inputs.path:") and "nothing found" in problem
    assert job_rows(storage) == []


def test_submit_does_not_take_a_sibling_folder_as_inputs(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1], folder="inputs2")
    with pytest.raises(SpecError, match="nothing found"):
        submit_job(storage, spec_for(data))


def test_submit_lists_every_storage_problem_at_once(storage: Storage, data: str,
                                                    unique_name: str) -> None:
    spec = spec_for(data, entry_script="other.py", model=f"{unique_name}zz/model")
    with pytest.raises(SpecError) as info:
        submit_job(storage, spec)
    fields = sorted(p.split(":", 1)[0] for p in info.value.problems)
    assert fields == ["entry_script", "inputs.path", "model"]
    assert job_rows(storage) == []


def test_new_job_id_starts_with_the_name_and_is_sortable_by_time() -> None:
    from datetime import UTC, datetime

    early = new_job_id("digits", datetime(2025, 1, 1, tzinfo=UTC))
    late = new_job_id("digits", datetime(2025, 1, 2, tzinfo=UTC))
    assert early.startswith("digits-20250101t000000-")
    assert early < late


def test_an_output_inside_another_jobs_output_folder_is_refused(storage: Storage,
                                                                data: str) -> None:
    # Its files would show up in the first job's downloads (found by a hostile run).
    upload_inputs(storage, data, [1])
    first = submit_job(storage, spec_for(data))
    for inside in (first.output_location, f"{first.output_location}/more"):
        with pytest.raises(SpecError) as refused:
            submit_job(storage, spec_for(data, output=inside))
        assert f"inside the output folder of job {first.job_id}" in str(refused.value)
    # A folder merely named like a job id, or beside the job's, is fine.
    submit_job(storage, spec_for(data, output=f"{data}/results"))
    submit_job(storage, spec_for(data, output=f"{data}/other/x-20260101t000000-abcdef"))
