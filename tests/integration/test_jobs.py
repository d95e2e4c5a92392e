"""The job service and the partitioner against a real Azurite."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from batchfx.errors import JobNotFoundError, JobStateError, SpecError
from batchfx.jobs import (
    cancel_job,
    get_job,
    job_progress,
    list_jobs,
    new_job_id,
    submit_job,
    transition_job,
)
from batchfx.partition import parse_manifest_line
from batchfx.partitioner import partition_job
from batchfx.records import (
    JobRecord,
    JobState,
    ManifestRef,
    MiniBatchRecord,
    MiniBatchStatus,
    decode_message,
)
from batchfx.settings import Settings
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


@pytest.fixture
def settings(connection_string: str, unique_name: str, tmp_path: Path) -> Settings:
    return Settings(
        connection_string=connection_string,
        jobs_container=unique_name,
        queue_name=unique_name,
        jobs_table=unique_name + "jobs",
        minibatches_table=unique_name + "mb",
        work_dir=str(tmp_path),
    )


@pytest.fixture
def storage(settings: Settings) -> Storage:
    store = Storage.from_settings(settings)
    store.ensure_resources()
    return store


@pytest.fixture
def data(storage: Storage, unique_name: str) -> str:
    """A container with the job's code folder (``code/score.py``); inputs go in ``inputs/``."""
    container = unique_name + "data"
    storage.blobs.ensure_container(container)
    script = b"def run(mini_batch):\n    return mini_batch\n"
    storage.blobs.upload(container, "code/score.py", script)
    return container


def upload_inputs(storage: Storage, container: str, sizes: list[int],
                  folder: str = "inputs") -> list[str]:
    names = [f"{folder}/f{i:05d}.txt" for i in range(len(sizes))]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda pair: storage.blobs.upload(container, pair[0], b"x" * pair[1]),
                      zip(names, sizes, strict=True)))
    return names


def spec_for(container: str, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "digits",
        "entry_script": "score.py",
        "source_directory": f"{container}/code",
        "inputs": f"{container}/inputs",
        "output": f"{container}/results",
    }
    spec.update(changes)
    return spec


def job_rows(storage: Storage) -> list[dict[str, Any]]:
    return list(storage.tables.query(storage.settings.jobs_table, JobRecord.PARTITION))


def drain_messages(storage: Storage) -> list[tuple[str, int, ManifestRef]]:
    found: list[tuple[str, int, ManifestRef]] = []
    while True:
        batch = list(storage.queues.receive(storage.settings.queue_name, visibility_timeout=300,
                                            max_messages=32))
        if not batch:
            return sorted(found, key=lambda m: m[1])
        found += [decode_message(m.content) for m in batch]


def manifest_items(storage: Storage, ref: ManifestRef) -> list[str]:
    body = storage.blobs.download(storage.settings.jobs_container, ref.blob, offset=ref.offset,
                                  length=ref.length)
    return [item.name for item in parse_manifest_line(body).items]


# --- submit --------------------------------------------------------------------------------

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


# --- partition -----------------------------------------------------------------------------

def test_partition_turns_25_files_into_3_mini_batch_messages(storage: Storage,
                                                             data: str) -> None:
    names = upload_inputs(storage, data, [1] * 25)
    job = submit_job(storage, spec_for(data, mini_batch_size=10))
    result = partition_job(storage, job.job_id)
    assert (result.done, result.mini_batches, result.items) == (True, 3, 25)
    messages = drain_messages(storage)
    assert [(m[0], m[1]) for m in messages] == [(job.job_id, 0), (job.job_id, 1),
                                                (job.job_id, 2)]
    assert [manifest_items(storage, m[2]) for m in messages] == [names[:10], names[10:20],
                                                                 names[20:]]


def test_partition_records_totals_and_moves_the_job_to_running(storage: Storage,
                                                               data: str) -> None:
    upload_inputs(storage, data, [1] * 25)
    job = submit_job(storage, spec_for(data, mini_batch_size=10))
    partition_job(storage, job.job_id)
    stored = get_job(storage, job.job_id)
    assert stored.state is JobState.RUNNING
    assert stored.partitioned
    assert (stored.mini_batches_total, stored.items_total) == (3, 25)
    assert stored.started


def test_partition_manifest_line_names_the_input_container(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1, 2])
    job = submit_job(storage, spec_for(data))
    partition_job(storage, job.job_id)
    ((_, _, ref),) = drain_messages(storage)
    body = storage.blobs.download(storage.settings.jobs_container, ref.blob, offset=ref.offset,
                                  length=ref.length)
    line = parse_manifest_line(body)
    assert (line.container, line.prefix) == (data, "inputs")
    assert [(i.size, bool(i.etag)) for i in line.items] == [(1, True), (2, True)]


def test_partition_by_bytes_packs_by_size_with_a_big_file_alone(storage: Storage,
                                                                data: str) -> None:
    # 1KB = 1024 bytes: 400+400 fit, +400 does not; the 5000-byte file goes alone.
    names = upload_inputs(storage, data, [400, 400, 400, 5000, 100, 100])
    job = submit_job(storage, spec_for(data, mini_batch_size="1KB"))
    result = partition_job(storage, job.job_id)
    assert (result.mini_batches, result.items) == (4, 6)
    groups = [manifest_items(storage, m[2]) for m in drain_messages(storage)]
    assert groups == [names[0:2], [names[2]], [names[3]], names[4:6]]


def test_partition_applies_the_glob(storage: Storage, data: str) -> None:
    storage.blobs.upload(data, "inputs/a.png", b"1")
    storage.blobs.upload(data, "inputs/b.txt", b"1")
    storage.blobs.upload(data, "inputs/sub/c.png", b"1")
    job = submit_job(storage, spec_for(data, inputs={"path": f"{data}/inputs", "glob": "*.png"}))
    result = partition_job(storage, job.job_id)
    assert result.items == 2
    (message,) = drain_messages(storage)
    assert manifest_items(storage, message[2]) == ["inputs/a.png", "inputs/sub/c.png"]


def test_partition_of_a_uri_file_makes_one_mini_batch_of_it(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [3, 3])
    spec = spec_for(data, inputs={"path": f"{data}/inputs/f00001.txt", "type": "uri_file"})
    job = submit_job(storage, spec)
    result = partition_job(storage, job.job_id)
    assert (result.mini_batches, result.items) == (1, 1)
    (message,) = drain_messages(storage)
    assert manifest_items(storage, message[2]) == ["inputs/f00001.txt"]


def test_partition_called_again_after_it_is_done_sends_nothing_more(storage: Storage,
                                                                     data: str) -> None:
    upload_inputs(storage, data, [1] * 5)
    job = submit_job(storage, spec_for(data, mini_batch_size=2))
    partition_job(storage, job.job_id)
    again = partition_job(storage, job.job_id)
    assert (again.done, again.mini_batches, again.items) == (True, 3, 5)
    assert len(drain_messages(storage)) == 3


def test_partition_resumes_after_the_last_listing_page(storage: Storage, data: str) -> None:
    # partition_job has no page-size knob: the SDK's listing page is 5,000 blobs, so 5,005
    # files make two pages. A zero budget stops it after the first page.
    names = upload_inputs(storage, data, [1] * 5005)
    job = submit_job(storage, spec_for(data, mini_batch_size=7))
    first = partition_job(storage, job.job_id, budget_s=0)
    assert (first.done, first.items) == (False, 5000)
    assert not get_job(storage, job.job_id).partitioned
    second = partition_job(storage, job.job_id, budget_s=0)
    assert (second.done, second.items) == (True, 5005)
    messages = drain_messages(storage)
    # 5000 = 714 * 7 + 2: the first page's last mini-batch has 2 files; none spans two pages.
    assert [m[1] for m in messages] == list(range(716))
    assert len(manifest_items(storage, messages[714][2])) == 2
    assert manifest_items(storage, messages[715][2]) == names[5000:]
    stored = get_job(storage, job.job_id)
    assert (stored.partitioned, stored.mini_batches_total, stored.items_total) == (True, 716,
                                                                                   5005)


def test_partition_after_cancel_sends_nothing(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1] * 5)
    job = submit_job(storage, spec_for(data))
    cancel_job(storage, job.job_id)
    result = partition_job(storage, job.job_id)
    assert result.mini_batches == 0
    assert drain_messages(storage) == []
    assert get_job(storage, job.job_id).state is JobState.CANCELED


# --- cancel and transitions ----------------------------------------------------------------

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
    transition_job(storage, job.job_id, end, reason="done")
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
                                  reason=f"by {end.value}").state
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
        return transition_job(storage, job.job_id, JobState.RUNNING, reason=reason).reason

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
    transition_job(storage, job.job_id, JobState.RUNNING, items_total=42, reason="why")
    stored = get_job(storage, job.job_id)
    assert (stored.state, stored.items_total, stored.reason) == (JobState.RUNNING, 42, "why")


def test_transition_of_an_unknown_job_raises_not_found(storage: Storage) -> None:
    with pytest.raises(JobNotFoundError):
        transition_job(storage, "nobody", JobState.RUNNING)


# --- list and progress ---------------------------------------------------------------------

def _insert_job(storage: Storage, job_id: str, created: str, **changes: Any) -> JobRecord:
    record = JobRecord(job_id=job_id, name="digits", state=JobState.RUNNING, spec={},
                       created=created, output_container="out", output_prefix=job_id, **changes)
    storage.tables.insert(storage.settings.jobs_table, record.to_entity())
    return record


def test_list_jobs_returns_newest_first(storage: Storage) -> None:
    _insert_job(storage, "b-job", "2025-01-02T00:00:00.000+00:00")
    _insert_job(storage, "a-job", "2025-01-03T00:00:00.000+00:00")
    _insert_job(storage, "c-job", "2025-01-01T00:00:00.000+00:00")
    assert [j.job_id for j in list_jobs(storage)] == ["a-job", "b-job", "c-job"]


def test_list_jobs_keeps_only_the_newest_up_to_the_limit(storage: Storage) -> None:
    for day in range(1, 6):
        _insert_job(storage, f"job-{day}", f"2025-01-0{day}T00:00:00.000+00:00")
    assert [j.job_id for j in list_jobs(storage, limit=2)] == ["job-5", "job-4"]


def test_list_jobs_of_an_empty_table_is_empty(storage: Storage) -> None:
    assert list_jobs(storage) == []


def test_list_jobs_shows_a_submitted_job(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1])
    job = submit_job(storage, spec_for(data))
    assert [j.job_id for j in list_jobs(storage)] == [job.job_id]


def test_job_progress_sums_the_job_s_mini_batch_rows(storage: Storage) -> None:
    job = _insert_job(storage, "j1", "2025-01-01T00:00:00.000+00:00", items_total=30,
                      mini_batches_total=4, partitioned=True,
                      started="2025-01-01T00:00:00.000+00:00",
                      ended="2025-01-01T00:00:10.000+00:00")
    table = storage.settings.minibatches_table
    rows = [
        MiniBatchRecord("j1", 0, MiniBatchStatus.SUCCEEDED, items=10, succeeded=10, rows=10),
        MiniBatchRecord("j1", 1, MiniBatchStatus.SUCCEEDED, items=10, succeeded=7, failed=3,
                        rows=7),
        MiniBatchRecord("j1", 2, MiniBatchStatus.FAILED, items=5, failed=5, error_phase="run"),
        MiniBatchRecord("j1", 3, MiniBatchStatus.RUNNING, items=5, succeeded=2),
        MiniBatchRecord("other", 0, MiniBatchStatus.SUCCEEDED, items=99, succeeded=99),
    ]
    for record in rows:
        storage.tables.insert(table, record.to_entity())
    p = job_progress(storage, job)
    assert (p.mini_batches_succeeded, p.mini_batches_failed, p.mini_batches_running) == (2, 1, 1)
    assert (p.items_succeeded, p.items_failed, p.items_pending, p.rows) == (17, 8, 5, 17)
    assert p.elapsed_s == 10.0
    assert p.items_per_second == 2.5
    assert not p.all_done and p.init_error == ""


def test_job_progress_reports_an_init_error_from_the_rows(storage: Storage) -> None:
    job = _insert_job(storage, "j1", "2025-01-01T00:00:00.000+00:00", items_total=5,
                      mini_batches_total=1, partitioned=True)
    record = MiniBatchRecord("j1", 0, MiniBatchStatus.FAILED, items=5, failed=5, tries=3,
                             error_phase="init", error_type="RuntimeError",
                             error_message="no model", error_traceback="Traceback ...")
    storage.tables.insert(storage.settings.minibatches_table, record.to_entity())
    assert "RuntimeError: no model" in job_progress(storage, job).init_error


def test_job_progress_of_a_job_without_rows_is_all_pending(storage: Storage) -> None:
    job = _insert_job(storage, "j1", "2025-01-01T00:00:00.000+00:00", items_total=12,
                      mini_batches_total=2, partitioned=True)
    p = job_progress(storage, job)
    assert (p.items_pending, p.mini_batches_pending) == (12, 2)


def test_new_job_id_starts_with_the_name_and_is_sortable_by_time() -> None:
    from datetime import UTC, datetime

    early = new_job_id("digits", datetime(2025, 1, 1, tzinfo=UTC))
    late = new_job_id("digits", datetime(2025, 1, 2, tzinfo=UTC))
    assert early.startswith("digits-20250101t000000-")
    assert early < late


def test_poison_function_records_the_mini_batch_as_failed(connection_string: str,
                                                          unique_name: str,
                                                          tmp_path: Path) -> None:
    from azure.functions.queue import QueueMessage

    from batchfx import app_context
    from batchfx.blueprints.scoring import record_poison_mini_batch
    from batchfx.records import MiniBatchRecord, mini_batch_key

    settings = Settings(connection_string=connection_string, jobs_container=unique_name,
                        queue_name=unique_name, jobs_table=f"{unique_name}jobs",
                        minibatches_table=f"{unique_name}mb", work_dir=str(tmp_path))
    storage = Storage.from_settings(settings)
    storage.ensure_resources()
    storage.blobs.upload(unique_name, "code/score.py", b"def run(mb):\n    return mb\n")
    for i in range(3):
        storage.blobs.upload(unique_name, f"in/{i}.txt", b"x")
    job = submit_job(storage, {"name": "poison-job", "entry_script": "score.py",
                               "source_directory": f"{unique_name}/code",
                               "inputs": f"{unique_name}/in", "output": f"{unique_name}-out/x"})
    partition_job(storage, job.job_id)
    message = next(storage.queues.receive(unique_name, visibility_timeout=30))
    app_context.use_settings(settings)
    try:
        record_poison_mini_batch(QueueMessage(body=message.content.encode(), dequeue_count=6))
    finally:
        app_context.use_settings(None)
    found = storage.tables.get(settings.minibatches_table, job.job_id, mini_batch_key(0))
    assert found is not None
    row = MiniBatchRecord.from_entity(found.values)
    assert row.status.value == "failed"
    assert row.failed == 3
    assert row.error_type == "PoisonMessage"
    assert "6 deliveries" in row.error_message
