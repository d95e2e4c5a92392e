"""Local folders read in place: listing in blob order, versions that any write changes,
reads pinned to a version, and nothing read outside the folders allowed."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from batchfx.core.errors import ConflictError, InputError, StorageNotFoundError
from batchfx.storage.local_files import LOCAL, LocalFiles, file_version


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.csv").write_text("1\n")
    (root / "a.txt").write_text("2\n")
    (root / "b.csv").write_text("3\n")
    (root / "_SUCCESS").write_text("")
    return root


def names(files: LocalFiles, prefix: str, **kwargs: object) -> list[list[str]]:
    return [[r.name for r in refs] for refs, _ in files.list_pages(LOCAL, prefix, **kwargs)]


def test_a_folder_is_listed_in_blob_name_order(folder: Path) -> None:
    files = LocalFiles((str(folder),))
    (page,) = names(files, f"{folder}/")
    base = str(folder)
    # "a.txt" before "a/x.csv", as blob names sort ('.' < '/')
    assert page == [f"{base}/_SUCCESS", f"{base}/a.txt", f"{base}/a/x.csv", f"{base}/b.csv"]


def test_pages_resume_after_their_token(folder: Path) -> None:
    files = LocalFiles((str(folder),))
    pages = list(files.list_pages(LOCAL, f"{folder}/", page_size=3))
    assert [len(refs) for refs, _ in pages] == [3, 1]
    token = pages[0][1]
    assert token is not None and pages[1][1] is None
    again = list(files.list_pages(LOCAL, f"{folder}/", continuation=token, page_size=3))
    assert [r.name for r in again[0][0]] == [r.name for r in pages[1][0]]


def test_a_path_naming_one_file_lists_that_file(folder: Path) -> None:
    files = LocalFiles((str(folder),))
    assert names(files, str(folder / "b.csv")) == [[str(folder / "b.csv")]]


def test_a_write_changes_the_version_and_a_pinned_read_fails(folder: Path) -> None:
    files = LocalFiles((str(folder),))
    path = str(folder / "b.csv")
    (ref,) = [r for r in files.list_names(LOCAL, f"{folder}/") if r.name == path]
    assert files.download(LOCAL, path, etag=ref.etag) == b"3\n"
    stat = os.stat(path)
    with open(path, "w") as stream:  # same size, and the old modification time set back
        stream.write("4\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_version(os.stat(path)) != ref.etag  # the status-change time moved
    with pytest.raises(ConflictError, match="changed after it was listed"):
        files.download(LOCAL, path, etag=ref.etag)


def test_ranges_and_streams_read_the_bytes_asked_for(folder: Path) -> None:
    files = LocalFiles((str(folder),))
    path = str(folder / "big.bin")
    Path(path).write_bytes(bytes(range(256)) * 9000)
    assert files.download(LOCAL, path, offset=10, length=5) == bytes(range(10, 15))
    out = io.BytesIO()
    assert files.download_to_stream(LOCAL, path, out, offset=1_000_000, length=1_300_000) \
        == 1_300_000
    assert out.getvalue() == (bytes(range(256)) * 9000)[1_000_000:2_300_000]


def test_a_removed_file_is_a_conflict_when_pinned_and_missing_otherwise(folder: Path) -> None:
    files = LocalFiles((str(folder),))
    path = str(folder / "b.csv")
    version = file_version(os.stat(path))
    os.remove(path)
    with pytest.raises(ConflictError, match="removed"):
        files.download(LOCAL, path, etag=version)
    with pytest.raises(StorageNotFoundError):
        files.download(LOCAL, path)


def test_nothing_outside_the_roots_is_read(folder: Path, tmp_path: Path) -> None:
    files = LocalFiles((str(folder / "a"),))
    with pytest.raises(InputError, match="BATCHFX_LOCAL_ROOTS"):
        files.download(LOCAL, str(folder / "b.csv"))
    with pytest.raises(InputError, match="BATCHFX_LOCAL_ROOTS"):
        list(files.list_pages(LOCAL, f"{folder}/"))
    assert not LocalFiles(()).allowed(str(folder / "a" / "x.csv"))
    assert not files.exists(LOCAL, str(folder / "b.csv"))


def test_a_link_out_of_the_folder_is_refused_by_name(folder: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("key")
    (folder / "a" / "leak.csv").symlink_to(secret)
    files = LocalFiles((str(tmp_path),))
    with pytest.raises(InputError, match=r"leak\.csv is a symbolic link to .*secret\.txt, "
                                         "outside the folder"):
        list(files.list_pages(LOCAL, f"{folder}/"))
    with pytest.raises(InputError, match="outside"):  # also listing the subfolder it is in
        list(files.list_pages(LOCAL, f"{folder}/a/"))


def test_a_link_inside_the_folder_is_read_and_a_linked_folder_not_listed_twice(
        folder: Path) -> None:
    (folder / "alias.csv").symlink_to(folder / "b.csv")
    (folder / "again").symlink_to(folder / "a", target_is_directory=True)
    files = LocalFiles((str(folder),))
    (page,) = names(files, f"{folder}/")
    assert f"{folder}/alias.csv" in page
    assert not any("/again/" in name for name in page)


def test_an_undecodable_file_name_is_refused_by_name(folder: Path) -> None:
    (folder / os.fsdecode(b"bad\xff.csv")).write_text("x")
    with pytest.raises(InputError, match="not valid UTF-8"):
        list(LocalFiles((str(folder),)).list_pages(LOCAL, f"{folder}/"))


def test_a_missing_folder_lists_nothing(tmp_path: Path) -> None:
    files = LocalFiles((str(tmp_path),))
    assert names(files, f"{tmp_path}/nothing/") == [[]]
