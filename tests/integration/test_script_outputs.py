"""Custom outputs (AZUREML_BI_OUTPUT_PATH) on Azurite: who may write a name, and how a
collision between two mini-batches is recorded rather than silently overwritten."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from batchfx.core.records import JobRecord, JobState
from batchfx.core.script_contract import ScriptConfig
from batchfx.services.script_outputs import _claim, custom_output_problems, sync_worker_outputs
from batchfx.storage import Storage


def _job(storage: Storage) -> JobRecord:
    return JobRecord("job-outputs-1", "outputs", JobState.RUNNING, {}, "2026-11-23T00:00:00Z",
                     storage.settings.jobs_container, "out/job-outputs-1")


def test_a_retry_of_the_same_mini_batch_on_another_worker_takes_the_name_over(
        storage: Storage) -> None:
    job = _job(storage)
    assert _claim(storage, job, "mb-3.txt", "host:100", "0000003")
    # worker 100 died; the mini-batch's next try runs on worker 200 and writes the same name
    assert _claim(storage, job, "mb-3.txt", "host:200", "0000003")
    assert custom_output_problems(storage, job, []) == []


def test_two_mini_batches_writing_one_name_is_a_collision_naming_both_workers(
        storage: Storage) -> None:
    job = _job(storage)
    assert _claim(storage, job, "summary.csv", "host:100", "0000001")
    assert not _claim(storage, job, "summary.csv", "host:200", "0000002")
    [problem] = custom_output_problems(storage, job, [])
    assert problem.startswith("custom output 'summary.csv' was written by workers host:100, "
                              "host:200")


def test_a_worker_updating_its_own_file_over_many_mini_batches_is_no_collision(
        storage: Storage) -> None:
    job = _job(storage)
    assert _claim(storage, job, "worker-stats.json", "host:300", "0000001")
    assert _claim(storage, job, "worker-stats.json", "host:300", "0000007")
    assert custom_output_problems(storage, job, []) == []


def test_a_fifo_or_a_link_in_the_output_folder_is_skipped_not_waited_on(
        storage: Storage, tmp_path: Path) -> None:
    job = _job(storage)
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.txt").write_text("kept")
    os.mkfifo(out / "pipe")  # opening it to read would block until a writer comes
    (out / "secret-link").symlink_to("/etc/hostname")
    config = ScriptConfig(code_dir=str(tmp_path), entry_script="score.py", model_dir=None,
                          output_dir=str(out))
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(
        sync_worker_outputs(storage, job, config, "0000001", owner="host:400")), daemon=True)
    thread.start()
    thread.join(timeout=120)  # generous: a blocked upload never returns at all
    assert done == [1]
    names = [r.name for r in storage.blobs.list_names(job.output_container, "out/job-outputs-1/")]
    assert names == ["out/job-outputs-1/result.txt"]


def test_a_slow_upload_of_a_shared_log_never_lands_after_a_newer_one(
        storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two script processes of one pool share a log folder; their runs end in two threads.
    The first thread's upload of the other process's metrics file, read before that
    process logged its run, must not overwrite the second thread's upload of it."""
    job = _job(storage)
    logs = tmp_path / "logs"
    logs.mkdir()
    metrics = logs / "w-p1.metrics.jsonl"
    metrics.write_text('{"name": "init_pid"}\n')
    (logs / "w-p0.log").write_text("p0\n")
    (logs / "w-p1.log").write_text("p1\n")
    reading = threading.Event()
    upload_file = storage.blobs.upload_file

    def slow_snapshot_upload(container: str, name: str, path: str) -> None:
        data = Path(path).read_bytes()  # the file as it is when its upload starts
        if path == str(metrics) and not reading.is_set():
            reading.set()
            time.sleep(1.0)  # a slow upload, still sending the old content
            storage.blobs.upload(container, name, data)
            return
        upload_file(container, name, path)

    monkeypatch.setattr(storage.blobs, "upload_file", slow_snapshot_upload)

    def sync(slot: str) -> None:
        config = ScriptConfig(code_dir=str(tmp_path), entry_script="score.py", model_dir=None,
                              output_dir=str(tmp_path / f"out-{slot}"),
                              log_path=str(logs / f"w-{slot}.log"))
        sync_worker_outputs(storage, job, config, "0000001", owner=f"w-{slot}")

    first = threading.Thread(target=sync, args=("p0",))
    first.start()
    assert reading.wait(60)
    with metrics.open("a") as stream:  # process p1 logs its run, then its own sync runs
        stream.write('{"name": "items_scored"}\n')
    sync("p1")
    first.join(60)
    uploaded = storage.blobs.download(job.output_container,
                                      f"{job.output_prefix}/logs/w-p1.metrics.jsonl")
    assert b"items_scored" in uploaded
