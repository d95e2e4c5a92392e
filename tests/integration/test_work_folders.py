"""A job's folders on a worker machine are removed once it has ended."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from job_helpers import spec_for, upload_inputs

from batchfx.services.jobs import cancel_job, submit_job
from batchfx.services.work_folders import ended_jobs_of, job_folders, sweep_ended_jobs
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


def _fill(folders: list[str]) -> None:
    for folder in folders:
        os.makedirs(os.path.join(folder, "sub"))
        file = os.path.join(folder, "sub", "weights.bin")
        Path(file).write_bytes(b"x")
        os.chmod(file, 0o444)  # staged read-only
        os.chmod(os.path.join(folder, "sub"), 0o555)


def test_the_folders_of_ended_jobs_are_removed_and_running_ones_kept(
        storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1])
    running = submit_job(storage, spec_for(data, output=f"{data}/results"))
    ended = submit_job(storage, spec_for(data, output=f"{data}/results"))
    cancel_job(storage, ended.job_id)
    work_dir = storage.settings.work_dir
    _fill(job_folders(work_dir, running.job_id) + job_folders(work_dir, ended.job_id))
    _fill(job_folders(work_dir, "unknown-20260101t000000-abcdef"))  # another app's, recent
    assert sweep_ended_jobs(work_dir, ended_jobs_of(storage)) == [ended.job_id]
    assert not any(os.path.exists(f) for f in job_folders(work_dir, ended.job_id))
    assert all(os.path.isdir(f) for f in job_folders(work_dir, running.job_id))
    assert all(os.path.isdir(f)
               for f in job_folders(work_dir, "unknown-20260101t000000-abcdef"))


def test_a_job_whose_state_cannot_be_read_keeps_its_folders(tmp_path: Path) -> None:
    _fill(job_folders(str(tmp_path), "some-job"))

    def unreachable(job_id: str) -> bool:
        raise ConnectionError("storage unreachable")

    assert sweep_ended_jobs(str(tmp_path), unreachable) == []
    assert all(os.path.isdir(f) for f in job_folders(str(tmp_path), "some-job"))


def test_a_sweep_lists_the_jobs_once_however_many_folders_it_finds(
        storage: Storage, data: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen in the bench: one read per folder, and every `batchfx run` leaves folders of jobs
    # its next Azurite does not know, so each worker's sweep read a hundred job rows.
    upload_inputs(storage, data, [1])
    ended = submit_job(storage, spec_for(data, output=f"{data}/results"))
    cancel_job(storage, ended.job_id)
    work_dir = storage.settings.work_dir
    strangers = [f"old-run-20260101t0000{i:02d}-abcdef" for i in range(30)]
    for job_id in [ended.job_id, *strangers]:
        _fill(job_folders(work_dir, job_id))
    calls: list[str] = []
    for name in ("get", "query"):
        real = getattr(storage.tables, name)
        monkeypatch.setattr(storage.tables, name,
                            lambda *a, _real=real, _name=name, **k: (calls.append(_name),
                                                                     _real(*a, **k))[1])
    assert sweep_ended_jobs(work_dir, ended_jobs_of(storage)) == [ended.job_id]
    assert calls == ["query"]
    assert all(os.path.isdir(f) for f in job_folders(work_dir, strangers[0]))
