"""batchfx.storage's blobs against a real Azurite: uploads, downloads, listing pages, block
writes and the errors they raise; and creating the app's resources."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.storage.blob import BlobClient

from batchfx.core.errors import ConflictError, StorageNotFoundError
from batchfx.core.settings import Settings
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite

MiB = 1024 * 1024


@pytest.fixture
def container(settings: Settings) -> str:
    return settings.jobs_container


# --- resources -----------------------------------------------------------------------------

def test_ensure_resources_is_idempotent(storage: Storage, settings: Settings) -> None:
    storage.ensure_resources()
    assert storage.blobs.container_exists(settings.jobs_container)
    assert storage.queues.approximate_count(settings.poison_queue_name) == 0


def test_container_exists_is_false_for_a_missing_container(storage: Storage,
                                                           unique_name: str) -> None:
    assert not storage.blobs.container_exists(unique_name + "x")


# --- blobs ---------------------------------------------------------------------------------

def test_blob_upload_then_download_gives_the_same_bytes(storage: Storage, container: str) -> None:
    data = bytes(range(256)) * 10
    storage.blobs.upload(container, "in/a.bin", data)
    assert storage.blobs.download(container, "in/a.bin") == data


def test_blob_upload_overwrites_by_default(storage: Storage, container: str) -> None:
    storage.blobs.upload(container, "a.txt", b"old")
    storage.blobs.upload(container, "a.txt", b"new")
    assert storage.blobs.download(container, "a.txt") == b"new"


def test_blob_upload_without_overwrite_raises_conflict(storage: Storage, container: str) -> None:
    storage.blobs.upload(container, "a.txt", b"first")
    with pytest.raises(ConflictError, match=r"a\.txt"):
        storage.blobs.upload(container, "a.txt", b"second", overwrite=False)
    assert storage.blobs.download(container, "a.txt") == b"first"


def test_blob_upload_file_and_download_to_file(storage: Storage, container: str,
                                               tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 1000 + b"end")
    storage.blobs.upload_file(container, "files/source.bin", str(source))
    target = tmp_path / "deep" / "folder" / "copy.bin"
    storage.blobs.download_to_file(container, "files/source.bin", str(target))
    assert target.read_bytes() == source.read_bytes()


def test_blob_range_download_gives_exactly_the_range(storage: Storage, container: str) -> None:
    data = b"".join(f"{i:04d}".encode() for i in range(1000))
    storage.blobs.upload(container, "r.txt", data)
    assert storage.blobs.download(container, "r.txt", offset=400, length=12) == data[400:412]
    assert storage.blobs.download(container, "r.txt", offset=0, length=1) == data[:1]
    assert storage.blobs.download(container, "r.txt", offset=3996, length=4) == data[3996:]


def test_blob_exists(storage: Storage, container: str) -> None:
    storage.blobs.upload(container, "here.txt", b"1")
    assert storage.blobs.exists(container, "here.txt")
    assert not storage.blobs.exists(container, "gone.txt")


def test_download_of_a_missing_blob_raises_not_found(storage: Storage, container: str) -> None:
    with pytest.raises(StorageNotFoundError, match=r"gone\.txt"):
        storage.blobs.download(container, "gone.txt")


def test_missing_container_raises_not_found_naming_it(storage: Storage,
                                                      unique_name: str) -> None:
    missing = unique_name + "missing"
    with pytest.raises(StorageNotFoundError) as info:
        storage.blobs.download(missing, "a.txt")
    assert missing in str(info.value)


def test_listing_a_missing_container_raises_not_found_naming_it(storage: Storage,
                                                                unique_name: str) -> None:
    missing = unique_name + "missing"
    with pytest.raises(StorageNotFoundError) as info:
        list(storage.blobs.list_pages(missing, ""))
    assert missing in str(info.value)


def _upload_names(storage: Storage, container: str, names: list[str]) -> None:
    for name in names:
        storage.blobs.upload(container, name, name.encode())


def test_list_pages_yields_pages_of_page_size_with_tokens(storage: Storage,
                                                          container: str) -> None:
    names = [f"in/{i}.txt" for i in range(5)]
    _upload_names(storage, container, names)
    pages = list(storage.blobs.list_pages(container, "in/", page_size=2))
    assert [[r.name for r in refs] for refs, _ in pages] == [names[0:2], names[2:4], names[4:]]
    assert [token is not None for _, token in pages] == [True, True, False]


def test_list_pages_refs_carry_size_and_etag(storage: Storage, container: str) -> None:
    storage.blobs.upload(container, "in/a.txt", b"12345")
    ((ref,), _), = storage.blobs.list_pages(container, "in/")
    assert (ref.name, ref.size) == ("in/a.txt", 5)
    assert ref.etag and ref.etag != "None"


def test_list_pages_resumes_exactly_after_the_page_of_a_token(storage: Storage,
                                                              container: str) -> None:
    names = [f"in/{i}.txt" for i in range(7)]
    _upload_names(storage, container, names)
    first = next(storage.blobs.list_pages(container, "in/", page_size=2))
    assert [r.name for r in first[0]] == names[:2]
    seen = [r.name for r in first[0]]
    token = first[1]
    while token:
        refs, token = next(storage.blobs.list_pages(container, "in/", continuation=token,
                                                    page_size=2))
        seen += [r.name for r in refs]
    assert seen == names


def test_list_pages_is_limited_to_the_prefix(storage: Storage, container: str) -> None:
    _upload_names(storage, container, ["in/a.txt", "other/b.txt"])
    listed = [r.name for refs, _ in storage.blobs.list_pages(container, "in/") for r in refs]
    assert listed == ["in/a.txt"]


def test_list_pages_of_an_empty_prefix_yields_no_refs(storage: Storage, container: str) -> None:
    listed = [r for refs, _ in storage.blobs.list_pages(container, "nothing/") for r in refs]
    assert listed == []


def test_block_writer_writes_more_than_8_mib_in_several_blocks(storage: Storage,
                                                               container: str) -> None:
    chunks = [bytes([i]) * MiB for i in range(9)] + [b"tail"]
    writer = storage.blobs.block_writer(container, "out/big.bin")
    for chunk in chunks:
        writer.write(chunk)
    writer.close()
    expected = b"".join(chunks)
    assert writer.bytes_written == len(expected)
    assert storage.blobs.download(container, "out/big.bin") == expected
    blob = BlobClient.from_connection_string(storage.settings.connection_string or "",
                                             container, "out/big.bin")
    committed, _ = blob.get_block_list("committed")
    assert len(committed) == 2


def test_block_writer_blob_is_not_visible_before_close(storage: Storage, container: str) -> None:
    writer = storage.blobs.block_writer(container, "out/pending.bin")
    writer.write(b"x" * (9 * MiB))  # one block staged, not committed
    assert not storage.blobs.exists(container, "out/pending.bin")
    writer.close()
    assert storage.blobs.exists(container, "out/pending.bin")


def test_block_writer_with_nothing_written_makes_an_empty_blob(storage: Storage,
                                                               container: str) -> None:
    writer = storage.blobs.block_writer(container, "out/empty.txt")
    writer.close()
    assert storage.blobs.exists(container, "out/empty.txt")
    assert storage.blobs.download(container, "out/empty.txt") == b""


def test_block_writer_replaces_an_existing_blob(storage: Storage, container: str) -> None:
    storage.blobs.upload(container, "out/r.txt", b"old content that is longer")
    writer = storage.blobs.block_writer(container, "out/r.txt")
    writer.write(b"new")
    writer.close()
    assert storage.blobs.download(container, "out/r.txt") == b"new"


def test_delete_prefix_deletes_every_blob_under_it_and_counts_them(storage: Storage,
                                                                   container: str) -> None:
    _upload_names(storage, container, ["tmp/a", "tmp/b/c", "tmp/d", "tmp2/e", "keep/f"])
    assert storage.blobs.delete_prefix(container, "tmp/") == 3
    left = [r.name for r in storage.blobs.list_names(container, "")]
    assert left == ["keep/f", "tmp2/e"]


def test_delete_prefix_of_nothing_deletes_nothing(storage: Storage, container: str) -> None:
    assert storage.blobs.delete_prefix(container, "nothing/") == 0
