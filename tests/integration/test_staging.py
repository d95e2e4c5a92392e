"""Staging a job's folders (code, models, side inputs) from storage onto the worker."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from batchfx.core.errors import InputError
from batchfx.services.staging import folder_version, stage_folder
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


@pytest.fixture(autouse=True)
def _folders(storage: Storage) -> None:
    """A side input folder and a one-file model in the app's container."""
    container = storage.settings.jobs_container
    storage.blobs.upload(container, "side/labels/names.txt", b"zero\n")
    storage.blobs.upload(container, "side/labels/sub/more.txt", b"one\n")
    storage.blobs.upload(container, "models/clf.pkl", b"pickle")


def test_a_side_input_is_staged_once_and_read_only(storage: Storage, tmp_path: Path) -> None:
    container = storage.settings.jobs_container
    cache = str(tmp_path / "cache")
    staged = stage_folder(storage, container, "side/labels", cache, read_only=True)
    files = sorted(p.relative_to(staged).as_posix() for p in Path(staged).rglob("*")
                   if p.is_file())
    assert files == ["names.txt", "sub/more.txt"]
    assert all(stat.S_IMODE(os.stat(Path(staged) / f).st_mode) == 0o444 for f in files)
    assert stage_folder(storage, container, "side/labels", cache, read_only=True) == staged
    code = stage_folder(storage, container, "side/labels/sub", str(tmp_path / "code"))
    assert stat.S_IMODE(os.stat(Path(code) / "more.txt").st_mode) & 0o200  # writable


def test_a_model_that_is_one_blob_is_staged_as_that_file(storage: Storage,
                                                         tmp_path: Path) -> None:
    container = storage.settings.jobs_container
    staged = stage_folder(storage, container, "models/clf.pkl", str(tmp_path / "cache"))
    assert Path(staged).name == "clf.pkl" and Path(staged).read_bytes() == b"pickle"


def test_a_folder_changed_since_submit_is_refused(storage: Storage, tmp_path: Path) -> None:
    container = storage.settings.jobs_container
    pinned = folder_version(storage, container, "side/labels")[0]
    storage.blobs.upload(container, "side/labels/names.txt", b"changed\n")
    with pytest.raises(InputError, match="changed after the job was submitted"):
        stage_folder(storage, container, "side/labels", str(tmp_path / "cache"), pinned)


def test_a_cached_folder_records_its_user_before_it_is_looked_at(storage: Storage,
                                                                 tmp_path: Path) -> None:
    # So a sweep trimming the caches never removes what a starting mini-batch reads.
    container = storage.settings.jobs_container
    cache = str(tmp_path / "cache")
    seen: list[tuple[str, bool]] = []

    def before_use(version: str) -> None:
        seen.append((version, os.path.isdir(os.path.join(cache, version))))

    first = stage_folder(storage, container, "side/labels", cache, read_only=True,
                         before_use=before_use)
    again = stage_folder(storage, container, "side/labels", cache, read_only=True,
                         before_use=before_use)
    version = os.path.basename(first)
    assert first == again and seen == [(version, False), (version, True)]
