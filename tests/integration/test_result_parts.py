"""Result parts on Azurite: small ones kept in the mini-batch row, large ones as blobs, and
finalize's reader streaming the inline ones in mini-batch order."""

from __future__ import annotations

from batchfx.core.records import PART_PROPERTIES, MiniBatchRecord, MiniBatchStatus
from batchfx.services.result_parts import INLINE_PART_MAX, PartReader, has_part, store_part
from batchfx.storage import Storage

JOB = "job-parts-1"


def _stored(storage: Storage, index: int, data: bytes, *, inline: bool = True
            ) -> MiniBatchRecord:
    """A succeeded mini-batch row with ``data`` as its part, written as the scorer does."""
    record = MiniBatchRecord(JOB, index, MiniBatchStatus.SUCCEEDED, items=1, tries=1,
                             succeeded=1, rows=data.count(b"\n"))
    store_part(storage, record, data, "text", inline=inline)
    storage.tables.insert(storage.settings.minibatches_table, record.to_entity())
    return record


def _read_back(storage: Storage) -> list[MiniBatchRecord]:
    """The rows as finalize reads them: every property but ``part_data``."""
    rows = storage.tables.query(storage.settings.minibatches_table, JOB,
                                select=MiniBatchRecord.columns(without=PART_PROPERTIES))
    return sorted((MiniBatchRecord.from_entity(r) for r in rows), key=lambda r: r.index)


def test_a_small_part_lives_in_the_row_and_a_large_one_in_a_blob(storage: Storage) -> None:
    small = _stored(storage, 0, b"a.txt 1\n")
    large = _stored(storage, 1, b"x" * INLINE_PART_MAX + b"\n")
    assert (small.part, small.part_data) == ("", b"a.txt 1\n")
    assert large.part == f"jobs/{JOB}/results/0000001-t1.txt" and not large.part_data
    assert storage.blobs.download(storage.settings.jobs_container, large.part) == \
        b"x" * INLINE_PART_MAX + b"\n"
    names = [r.name for r in storage.blobs.list_names(storage.settings.jobs_container,
                                                      f"jobs/{JOB}/results/")]
    assert names == [large.part]  # the small part wrote no blob


def test_a_per_input_file_part_is_always_a_blob(storage: Storage) -> None:
    record = _stored(storage, 0, b"a.txt 1\n", inline=False)
    assert record.part.endswith("0000000-t1.txt") and not record.part_data


def test_rows_read_without_their_parts_still_count_as_having_one(storage: Storage) -> None:
    _stored(storage, 0, b"r0\n")
    empty = MiniBatchRecord(JOB, 1, MiniBatchStatus.FAILED, items=1, tries=3, failed=1)
    storage.tables.insert(storage.settings.minibatches_table, empty.to_entity())
    first, second = _read_back(storage)
    assert first.part_data == b"" and first.rows == 1 and has_part(first)
    assert not has_part(second)


def test_the_reader_streams_inline_parts_in_order_and_reads_blobs_by_name(
        storage: Storage) -> None:
    parts = {i: f"row {i}\n".encode() for i in range(0, 2500, 2)}  # rows over 3 pages
    parts[7] = b"b" * (INLINE_PART_MAX + 1)  # one blob among them
    for index, data in sorted(parts.items()):
        _stored(storage, index, data)
    reader = PartReader(storage, JOB)
    records = _read_back(storage)
    assert [reader.read(r) for r in records] == [parts[i] for i in sorted(parts)]
    assert reader.point_reads == 0


def test_the_reader_keeps_parts_it_passed_for_when_they_are_asked_for(
        storage: Storage) -> None:
    for index in range(6):
        _stored(storage, index, f"row {index}\n".encode())
    by_index = {r.index: r for r in _read_back(storage)}
    reader = PartReader(storage, JOB)
    # Partitioned output asks group by group: evens, then odds.
    order = [0, 2, 4, 1, 3, 5]
    assert [reader.read(by_index[i]) for i in order] == [f"row {i}\n".encode() for i in order]
    assert reader.point_reads == 0  # 1 and 3 were kept when passed; 5 is still ahead


def test_past_its_budget_the_reader_reads_a_passed_part_by_its_key(storage: Storage) -> None:
    for index in range(6):
        _stored(storage, index, f"row {index}\n".encode())
    by_index = {r.index: r for r in _read_back(storage)}
    reader = PartReader(storage, JOB, keep_max=len(b"row 1\n"))  # room for one part
    order = [0, 2, 4, 1, 3, 5, 1]
    assert [reader.read(by_index[i]) for i in order] == [f"row {i}\n".encode() for i in order]
    assert reader.point_reads == 2  # 3 did not fit beside 1; 1 again was given away


def test_an_empty_part_is_not_stored(storage: Storage) -> None:
    record = MiniBatchRecord(JOB, 0, MiniBatchStatus.SUCCEEDED)
    store_part(storage, record, b"", "text")
    assert (record.part, record.part_data) == ("", b"")
    assert "part_data" not in record.to_entity()


def test_a_part_of_several_hundred_kib_spans_properties_of_its_row(storage: Storage) -> None:
    data = bytes(range(256)) * 2000  # 500 KiB: eight 64 KiB properties, the last partly
    big = _stored(storage, 7, data)
    assert big.part == "" and big.part_data == data
    found = storage.tables.get(storage.settings.minibatches_table, JOB, "0000007")
    assert found is not None
    assert [n for n in PART_PROPERTIES if found.values.get(n)] == list(PART_PROPERTIES)
    assert MiniBatchRecord.from_entity(found.values).part_data == data
    (read_back,) = _read_back(storage)  # as finalize reads the rows: without their parts
    assert read_back.part_data == b""
    assert PartReader(storage, JOB).read(read_back) == data  # streamed, joined
