"""`batchfx run`'s upload of local folders: names that cannot be blob names are refused
before anything of that folder is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchfx.core.errors import SpecError
from batchfx.services.upload import upload_local_paths
from batchfx.storage import Storage


def _record() -> dict[str, object]:
    return {"name": "upload-check", "entry_script": "score.py", "source_directory": "code",
            "inputs": {"path": "data"}, "output": "out/x"}


def test_a_local_input_file_whose_name_is_not_utf8_is_refused_by_name(
        storage: Storage, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def run(b):\n    return b\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.txt").write_text("1")
    with open(os.path.join(os.fsencode(data), b"bad\xff.txt"), "wb") as f:
        f.write(b"2")
    with pytest.raises(SpecError) as caught:
        upload_local_paths(storage, _record(), tmp_path)
    [problem] = caught.value.problems
    assert problem.startswith("inputs: local file b'bad\\xff.txt'")
    assert "not valid UTF-8" in problem and "rename it" in problem
    container = storage.settings.jobs_container
    written = [r.name for r in storage.blobs.list_names(container, "uploads/")]
    assert not any(name.startswith("uploads/inputs/") for name in written)


def test_local_folders_with_utf8_names_upload(storage: Storage, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def run(b):\n    return b\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "naïve ünïcode.txt").write_text("1")
    out = upload_local_paths(storage, _record(), tmp_path)
    container, prefix = str(out["inputs"]["path"]).split("/", 1)
    names = [r.name for r in storage.blobs.list_names(container, prefix)]
    assert [n.rsplit("/", 1)[-1] for n in names] == ["naïve ünïcode.txt"]


def _code_with(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text("def run(b):\n    return b\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("1")
    return code


def test_a_link_out_of_the_code_folder_is_refused_not_uploaded(storage: Storage,
                                                               tmp_path: Path) -> None:
    code = _code_with(tmp_path)
    secret = tmp_path / "id_rsa"
    secret.write_text("private key")
    (code / "key").symlink_to(secret)
    with pytest.raises(SpecError) as caught:
        upload_local_paths(storage, _record(), tmp_path)
    assert caught.value.problems == [
        f"{code / 'key'}: a symbolic link to {secret}, outside the folder {code} — copy the "
        "file in if it belongs to the upload"]
    container = storage.settings.jobs_container
    assert not [r for r in storage.blobs.list_names(container, "uploads/code/")]


def test_a_dangling_link_is_refused_naming_it(storage: Storage, tmp_path: Path) -> None:
    code = _code_with(tmp_path)
    (code / "gone").symlink_to(tmp_path / "nothing-here")
    with pytest.raises(SpecError, match=r"a symbolic link to .*nothing-here, which does not"):
        upload_local_paths(storage, _record(), tmp_path)


def test_links_inside_the_folder_upload_once(storage: Storage, tmp_path: Path) -> None:
    code = _code_with(tmp_path)
    (code / "lib").mkdir()
    (code / "lib" / "helpers.py").write_text("X = 1\n")
    (code / "helpers.py").symlink_to(code / "lib" / "helpers.py")
    (code / "again").symlink_to(code / "lib")  # a folder: its files are listed under lib/
    out = upload_local_paths(storage, _record(), tmp_path)
    container, prefix = str(out["source_directory"]).split("/", 1)
    names = sorted(r.name[len(prefix) + 1:]
                   for r in storage.blobs.list_names(container, prefix + "/"))
    assert names == ["helpers.py", "lib/helpers.py", "score.py"]
