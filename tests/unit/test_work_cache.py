"""The work folder's shared caches kept under a budget: least recently used first, never
an entry a running job uses, hard-linked files counted once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchfx.core.settings import Settings
from batchfx.core.work_cache import evict, note_use, read_entries
from batchfx.services.work_folders import sweep_ended_jobs

MB = 2**20


def _entry(work: Path, kind: str, name: str, mb: int, used_at: float) -> Path:
    folder = work / kind / name
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(mb * MB))
    os.chmod(folder / "weights.bin", 0o444)  # snapshots are read-only
    os.utime(folder, (used_at, used_at))
    return folder


def _use(work: Path, kind: str, name: str, job: str, at: float) -> None:
    note_use(str(work), kind, name, job)
    os.utime(work / "cache-users" / kind / name / job, (at, at))


def test_unused_entries_go_least_recently_used_first_until_the_caches_fit(
        tmp_path: Path) -> None:
    old = _entry(tmp_path, "snapshots", "v-old", 2, 1_000)
    mid = _entry(tmp_path, "snapshots", "v-mid", 2, 2_000)
    new = _entry(tmp_path, "models", "layout-new", 2, 3_000)
    _use(tmp_path, "snapshots", "v-old", "job-a", 1_500)
    _use(tmp_path, "snapshots", "v-mid", "job-b", 2_500)

    def ended(job_id: str) -> bool:
        return True  # every user has ended

    removed = evict(str(tmp_path), 4 * MB + MB // 2, ended)
    assert removed == ["snapshots/v-old"]
    assert not old.exists() and mid.exists() and new.exists()
    assert not (tmp_path / "cache-users" / "snapshots" / "v-old").exists()


def test_an_entry_a_running_job_uses_is_never_removed(tmp_path: Path) -> None:
    used = _entry(tmp_path, "snapshots", "v-used", 3, 1_000)
    free = _entry(tmp_path, "models", "layout-free", 1, 5_000)
    _use(tmp_path, "snapshots", "v-used", "running-job", 1_000)
    removed = evict(str(tmp_path), MB, lambda job_id: job_id != "running-job")
    assert removed == ["models/layout-free"]
    assert used.exists() and not free.exists()
    (entry,) = read_entries(str(tmp_path), lambda job_id: False)
    assert entry.users == ("running-job",)


def test_a_job_whose_state_cannot_be_read_keeps_its_entries(tmp_path: Path) -> None:
    kept = _entry(tmp_path, "snapshots", "v", 2, 1_000)
    _use(tmp_path, "snapshots", "v", "some-job", 1_000)

    def unreachable(job_id: str) -> bool:
        raise ConnectionError("storage unreachable")

    assert evict(str(tmp_path), 1, unreachable) == []
    assert kept.exists()


def test_hard_linked_files_count_once(tmp_path: Path) -> None:
    snapshot = _entry(tmp_path, "snapshots", "v", 3, 1_000)
    layout = tmp_path / "models" / "layout" / "digits" / "1"
    layout.mkdir(parents=True)
    os.link(snapshot / "weights.bin", layout / "weights.bin")
    sizes = {e.name: e.size for e in read_entries(str(tmp_path), lambda job_id: True)}
    assert sizes["v"] >= 3 * MB and sizes["layout"] == 0
    assert evict(str(tmp_path), 4 * MB, lambda job_id: True) == []  # 3 MB, not 6


def test_no_budget_keeps_everything_and_the_sweep_trims_with_the_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _entry(tmp_path, "snapshots", "v1", 1, 1_000)
    _entry(tmp_path, "snapshots", "v2", 1, 2_000)
    assert evict(str(tmp_path), 0, lambda job_id: True) == []
    sweep_ended_jobs(str(tmp_path), lambda job_id: True, cache_budget_mb=1.5)
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["v2"]


@pytest.mark.parametrize(("raw", "expected"), [("0", 0.0), ("512", 512.0), ("", 10240.0)])
def test_the_budget_setting(raw: str, expected: float) -> None:
    assert Settings.from_env({"BATCHFX_WORK_DIR_MAX_MB": raw}).work_dir_max_mb == expected


@pytest.mark.parametrize("raw", ["-1", "lots", "nan"])
def test_a_bad_budget_setting_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ValueError, match="BATCHFX_WORK_DIR_MAX_MB"):
        Settings.from_env({"BATCHFX_WORK_DIR_MAX_MB": raw})
