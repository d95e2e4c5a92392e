"""Downloading a job's outputs: into a new or empty folder, or over an earlier download
(whose files are replaced, none left to mix with the new ones); a folder holding anything
else is refused and left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchfx.core.errors import OutputError
from batchfx.services.upload import DOWNLOAD_MANIFEST, download_outputs, download_problem
from batchfx.storage import Storage


def _job_output(storage: Storage, job: str, files: dict[str, str]) -> str:
    container = storage.settings.jobs_container
    storage.blobs.ensure_container(container)
    for name, text in files.items():
        storage.blobs.upload(container, f"results/{job}/{name}", text.encode())
    return f"{container}/results/{job}"


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*")
            if p.is_file() and p.name != DOWNLOAD_MANIFEST}


def test_a_second_download_replaces_the_first_and_leaves_none_of_its_files(
        storage: Storage, tmp_path: Path) -> None:
    first = _job_output(storage, "a", {"out.txt": "a rows", "logs/w1.log": "a", "old.csv": "x"})
    second = _job_output(storage, "b", {"out.txt": "b rows", "logs/w2.log": "b"})
    dest = tmp_path / "out"
    assert len(download_outputs(storage, first, dest)) == 3
    assert len(download_outputs(storage, second, dest)) == 2
    assert _tree(dest) == {"out.txt": "b rows", "logs/w2.log": "b"}
    assert not (dest / "logs" / "w1.log").exists()


def test_a_folder_holding_other_files_is_refused_and_left_untouched(
        storage: Storage, tmp_path: Path) -> None:
    location = _job_output(storage, "c", {"out.txt": "c rows"})
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("my notes")
    (dest / "out.txt").write_text("my own out.txt")
    with pytest.raises(OutputError, match="not an earlier batchfx download"):
        download_outputs(storage, location, dest)
    assert _tree(dest) == {"notes.txt": "my notes", "out.txt": "my own out.txt"}
    # A file added to an earlier download is the user's too.
    fresh = tmp_path / "fresh"
    download_outputs(storage, location, fresh)
    (fresh / "analysis.ipynb").write_text("{}")
    problem = download_problem(fresh)
    assert problem is not None and "analysis.ipynb" in problem


def test_a_file_as_destination_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    problem = download_problem(tmp_path / "f")
    assert problem is not None and "is a file" in problem
    assert download_problem(tmp_path / "new") is None


def test_an_earlier_manifest_never_removes_a_file_outside_the_folder(
        storage: Storage, tmp_path: Path) -> None:
    location = _job_output(storage, "d", {"out.txt": "d rows"})
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / DOWNLOAD_MANIFEST).write_text('{"files": ["../victim.txt"]}')
    download_outputs(storage, location, dest)
    assert victim.read_text() == "keep me"
    assert _tree(dest) == {"out.txt": "d rows"}
