"""batchfx.storage against a real Azurite: blobs, queues, tables and the errors they raise."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from batchfx.errors import ConflictError, StorageError, StorageNotFoundError
from batchfx.settings import Settings
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite

MiB = 1024 * 1024


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
def container(settings: Settings) -> str:
    return settings.jobs_container


@pytest.fixture
def queue(settings: Settings) -> str:
    return settings.queue_name


@pytest.fixture
def table(settings: Settings) -> str:
    return settings.jobs_table


def account_key(connection_string: str) -> str:
    match = re.search(r"AccountKey=([^;]+)", connection_string)
    assert match, "the Azurite connection string has no AccountKey"
    return match.group(1)


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
    blob = storage.blobs.container(container).get_blob_client("out/big.bin")
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


# --- queues --------------------------------------------------------------------------------

def test_queue_send_then_receive_gives_the_text(storage: Storage, queue: str) -> None:
    text = '{"job_id":"j1","index":3,"note":"ünïcödé"}'
    storage.queues.send(queue, text)
    (message,) = storage.queues.receive(queue, visibility_timeout=30)
    assert message.content == text
    assert message.dequeue_count == 1
    assert message.id and message.pop_receipt


def test_queue_message_is_base64_on_the_wire(storage: Storage, queue: str,
                                             connection_string: str) -> None:
    text = '{"job_id":"j1","index":3,"note":"ünïcödé"}'
    storage.queues.send(queue, text)
    raw = QueueClient.from_connection_string(connection_string, queue)  # no decode policy
    (message,) = raw.peek_messages()
    assert message.content == base64.b64encode(text.encode()).decode()


def test_queue_receive_from_an_empty_queue_returns_nothing(storage: Storage, queue: str) -> None:
    assert list(storage.queues.receive(queue, visibility_timeout=30, max_messages=5)) == []


def test_queue_received_message_is_hidden_from_the_next_receive(storage: Storage,
                                                                queue: str) -> None:
    storage.queues.send(queue, "one")
    assert len(list(storage.queues.receive(queue, visibility_timeout=60))) == 1
    assert list(storage.queues.receive(queue, visibility_timeout=60)) == []


def test_queue_receive_takes_up_to_max_messages(storage: Storage, queue: str) -> None:
    for i in range(5):
        storage.queues.send(queue, f"m{i}")
    received = list(storage.queues.receive(queue, visibility_timeout=60, max_messages=3))
    assert len(received) == 3


def test_queue_send_with_visibility_timeout_hides_the_message(storage: Storage,
                                                              queue: str) -> None:
    storage.queues.send(queue, "later", visibility_timeout=60)
    assert list(storage.queues.receive(queue, visibility_timeout=30)) == []
    assert storage.queues.approximate_count(queue) == 1


def test_queue_extend_returns_a_receipt_that_delete_accepts(storage: Storage,
                                                            queue: str) -> None:
    storage.queues.send(queue, "work")
    (message,) = storage.queues.receive(queue, visibility_timeout=30)
    receipt = storage.queues.extend(queue, message.id, message.pop_receipt, 120)
    assert receipt != message.pop_receipt
    storage.queues.delete(queue, message.id, receipt)
    assert storage.queues.approximate_count(queue) == 0


def test_queue_extend_to_zero_makes_the_message_visible_again(storage: Storage,
                                                              queue: str) -> None:
    storage.queues.send(queue, "retry me")
    (first,) = storage.queues.receive(queue, visibility_timeout=60)
    storage.queues.extend(queue, first.id, first.pop_receipt, 0)
    (again,) = storage.queues.receive(queue, visibility_timeout=60)
    assert (again.id, again.content, again.dequeue_count) == (first.id, "retry me", 2)


def test_queue_extend_with_a_stale_receipt_fails(storage: Storage, queue: str) -> None:
    storage.queues.send(queue, "work")
    (message,) = storage.queues.receive(queue, visibility_timeout=30)
    storage.queues.extend(queue, message.id, message.pop_receipt, 30)
    with pytest.raises(StorageError):
        storage.queues.extend(queue, message.id, message.pop_receipt, 30)


def test_queue_delete_removes_the_message(storage: Storage, queue: str) -> None:
    storage.queues.send(queue, "done")
    (message,) = storage.queues.receive(queue, visibility_timeout=30)
    storage.queues.delete(queue, message.id, message.pop_receipt)
    assert storage.queues.approximate_count(queue) == 0


def test_queue_send_to_a_missing_queue_raises_not_found_naming_it(storage: Storage,
                                                                  unique_name: str) -> None:
    missing = unique_name + "missing"
    with pytest.raises(StorageNotFoundError) as info:
        storage.queues.send(missing, "x")
    assert missing in str(info.value)


# --- tables --------------------------------------------------------------------------------

def _row(pk: str = "p1", rk: str = "r1", **values: object) -> dict[str, object]:
    return {"PartitionKey": pk, "RowKey": rk, **values}


def test_table_insert_then_get_gives_the_values_and_etag(storage: Storage, table: str) -> None:
    etag = storage.tables.insert(table, _row(state="queued", count=3, ratio=0.5, flag=True))
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None
    assert found.etag == etag
    assert {k: found.values[k] for k in ("state", "count", "ratio", "flag")} == {
        "state": "queued", "count": 3, "ratio": 0.5, "flag": True}


def test_table_get_of_a_missing_row_is_none(storage: Storage, table: str) -> None:
    assert storage.tables.get(table, "p1", "nobody") is None


def test_table_insert_of_an_existing_row_raises_conflict(storage: Storage, table: str) -> None:
    storage.tables.insert(table, _row(v=1))
    with pytest.raises(ConflictError):
        storage.tables.insert(table, _row(v=2))
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None and found.values["v"] == 1


def test_table_replace_with_the_current_etag_writes(storage: Storage, table: str) -> None:
    etag = storage.tables.insert(table, _row(state="queued", old="x"))
    new_etag = storage.tables.replace(table, _row(state="running"), etag=etag)
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None
    assert found.values["state"] == "running"
    assert "old" not in found.values  # replace, not merge
    assert found.etag == new_etag != etag


def test_table_replace_with_a_stale_etag_raises_conflict(storage: Storage, table: str) -> None:
    stale = storage.tables.insert(table, _row(state="queued"))
    storage.tables.replace(table, _row(state="running"), etag=stale)
    with pytest.raises(ConflictError):
        storage.tables.replace(table, _row(state="canceled"), etag=stale)
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None and found.values["state"] == "running"


def test_table_replace_without_etag_upserts(storage: Storage, table: str) -> None:
    storage.tables.replace(table, _row(state="new"), etag=None)
    storage.tables.replace(table, _row(state="newer"), etag=None)
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None and found.values["state"] == "newer"


def test_table_merge_updates_some_columns_and_keeps_the_rest(storage: Storage,
                                                             table: str) -> None:
    storage.tables.insert(table, _row(state="queued", items=10))
    storage.tables.merge(table, _row(state="running"))
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None
    assert (found.values["state"], found.values["items"]) == ("running", 10)


def test_table_merge_with_a_stale_etag_raises_conflict(storage: Storage, table: str) -> None:
    stale = storage.tables.insert(table, _row(state="queued"))
    storage.tables.merge(table, _row(state="running"), etag=stale)
    with pytest.raises(ConflictError):
        storage.tables.merge(table, _row(state="aborted"), etag=stale)


def test_table_query_returns_only_one_partition(storage: Storage, table: str) -> None:
    for pk, rk in [("job-a", "1"), ("job-a", "2"), ("job-b", "1"), ("job-a2", "1")]:
        storage.tables.insert(table, _row(pk, rk, v=f"{pk}/{rk}"))
    rows = list(storage.tables.query(table, "job-a"))
    assert sorted(r["v"] for r in rows) == ["job-a/1", "job-a/2"]


def test_table_query_handles_a_quote_in_the_partition_key(storage: Storage, table: str) -> None:
    storage.tables.insert(table, _row("o'brien", "1", v=1))
    storage.tables.insert(table, _row("o", "1", v=2))
    assert [r["v"] for r in storage.tables.query(table, "o'brien")] == [1]


def test_table_query_selects_columns(storage: Storage, table: str) -> None:
    storage.tables.insert(table, _row(a=1, b=2))
    (row,) = storage.tables.query(table, "p1", select=["a"])
    assert row["a"] == 1
    assert "b" not in row


# --- secrets never in messages -------------------------------------------------------------

def test_error_messages_never_contain_the_account_key(storage: Storage, settings: Settings,
                                                      connection_string: str,
                                                      unique_name: str) -> None:
    key = account_key(connection_string)
    missing = unique_name + "missing"
    failures: list[StorageError] = []
    attempts = [
        lambda: storage.blobs.download(settings.jobs_container, "gone.txt"),
        lambda: storage.blobs.download(missing, "gone.txt"),
        lambda: storage.queues.send(missing, "x"),
        lambda: storage.tables.insert(settings.jobs_table, _row()),
        lambda: storage.tables.insert(settings.jobs_table, _row()),
    ]
    for attempt in attempts:
        try:
            attempt()
        except StorageError as exc:
            failures.append(exc)
    assert len(failures) == 4
    for exc in failures:
        assert key not in str(exc)
        assert key not in repr(exc)


def test_authentication_failure_message_does_not_contain_the_key(settings: Settings,
                                                                  connection_string: str) -> None:
    real_key = account_key(connection_string)
    wrong_key = base64.b64encode(b"not the azurite key, but valid base64").decode()
    wrong = Settings(
        connection_string=connection_string.replace(real_key, wrong_key),
        jobs_container=settings.jobs_container,
    )
    store = Storage.from_settings(wrong)
    with pytest.raises(StorageError) as info:
        store.blobs.upload(settings.jobs_container, "a.txt", b"x")
    assert wrong_key not in str(info.value)
    assert real_key not in str(info.value)
    assert settings.jobs_container in str(info.value)
