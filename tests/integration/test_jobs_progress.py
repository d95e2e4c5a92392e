"""Listing jobs and summing their progress from mini-batch rows against a real Azurite,
and the row the poison function writes for a mini-batch the host gave up on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from app_settings import app_settings
from job_helpers import spec_for, upload_inputs

from batchfx.core.records import JobRecord, JobState, MiniBatchRecord, MiniBatchStatus
from batchfx.services.jobs import job_progress, list_jobs, submit_job
from batchfx.services.partitioner import partition_job
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


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


def test_poison_function_records_the_mini_batch_as_failed(connection_string: str,
                                                          unique_name: str,
                                                          tmp_path: Path) -> None:
    from azure.functions.queue import QueueMessage

    from batchfx.api import context as app_context
    from batchfx.api.scoring import record_poison_mini_batch
    from batchfx.core.records import MiniBatchRecord, mini_batch_key

    settings = app_settings(connection_string, unique_name, tmp_path)
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
