"""Tabular inputs against a real Azurite: ranged reads of footers and slices, the partition
activity on one large Parquet or CSV file (many mini-batches, resumable), ETag guards."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from app_settings import app_settings
from job_helpers import expand

from batchfx.core.errors import InputError
from batchfx.core.packing import ManifestLine, parse_manifest_line
from batchfx.core.records import JobRecord, ManifestRef
from batchfx.services.job_transitions import transition_job
from batchfx.services.jobs import get_job, job_progress, submit_job
from batchfx.services.partitioner import partition_job
from batchfx.storage import Storage
from batchfx.tabular.fetch import fetch_batch
from batchfx.tabular.reading import read_batch
from batchfx.tabular.remote import BlobReader, blob_ranges

pytestmark = pytest.mark.azurite


@pytest.fixture
def storage(connection_string: str, unique_name: str, tmp_path: Path) -> Storage:
    store = Storage.from_settings(app_settings(connection_string, unique_name, tmp_path))
    store.ensure_resources()
    store.blobs.upload(unique_name, "code/score.py", b"def run(df):\n    return df\n")
    return store


def parquet_bytes(rows: int, group_size: int) -> bytes:
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "text": [f"value {i:08d} " * 3 for i in range(rows)]})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=group_size)
    return out.getvalue()


def csv_bytes(rows: int) -> bytes:
    return ("id,text\n" + "".join(f"{i},\"row {i}, {'z' * (i % 50)}\"\n"
                                  for i in range(rows))).encode()


def put(storage: Storage, name: str, body: bytes) -> str:
    storage.blobs.upload(storage.settings.jobs_container, name, body)
    return f"{storage.settings.jobs_container}/{name}"


def submit(storage: Storage, path: str, fmt: str, **changes: Any) -> JobRecord:
    spec: dict[str, Any] = {
        "name": "tabular", "entry_script": "score.py",
        "source_directory": f"{storage.settings.jobs_container}/code",
        "inputs": {"path": path, "type": "tabular", "format": fmt},
        "output": f"{storage.settings.jobs_container}-out/results", "allow_reuse": False,
    }
    spec.update(changes)
    return submit_job(storage, spec)


def partition_all(storage: Storage, job_id: str, **options: Any) -> int:
    """Call the activity until it is done; returns how many calls it took."""
    for calls in range(1, 1000):
        if partition_job(storage, job_id, **options).done:
            return calls
    raise AssertionError("partitioning never finished")


def messages(storage: Storage) -> list[tuple[str, int, ManifestRef]]:
    found: list[tuple[str, int, ManifestRef]] = []
    while batch := list(storage.queues.receive(storage.settings.queue_name,
                                               visibility_timeout=300, max_messages=32)):
        found += [message for m in batch for message in expand(storage, m.content)]
    return sorted(found, key=lambda m: m[1])


def lines_of(storage: Storage) -> list[ManifestLine]:
    out = []
    for _, _, ref in messages(storage):
        out.append(parse_manifest_line(storage.blobs.download(
            storage.settings.jobs_container, ref.blob, offset=ref.offset, length=ref.length)))
    return out


# --- ranged reads ----------------------------------------------------------------------------

def test_a_parquet_footer_is_read_through_ranged_reads_only(storage: Storage) -> None:
    data = parquet_bytes(200_000, 20_000)
    put(storage, "in/big.parquet", data)
    [ref] = storage.blobs.list_names(storage.settings.jobs_container, "in/big.parquet")
    reader = BlobReader(blob_ranges(storage.blobs, storage.settings.jobs_container, ref.name,
                                    ref.etag), ref.size)
    metadata = pq.ParquetFile(reader).metadata
    assert (metadata.num_rows, metadata.num_row_groups) == (200_000, 10)
    assert reader.bytes_read <= 128 * 1024 < len(data) and reader.requests <= 2


def test_a_blob_replaced_after_listing_is_refused_by_its_etag(storage: Storage) -> None:
    put(storage, "in/x.csv", b"id\n1\n")
    [ref] = storage.blobs.list_names(storage.settings.jobs_container, "in/x.csv")
    put(storage, "in/x.csv", b"id\n2\n")
    read = blob_ranges(storage.blobs, storage.settings.jobs_container, ref.name, ref.etag)
    with pytest.raises(InputError, match=r"in/x.csv changed after the job listed it"):
        read(0, 3)


# --- the partition activity --------------------------------------------------------------------

def test_one_large_parquet_file_becomes_many_mini_batches_with_exact_row_counts(
        storage: Storage) -> None:
    data = parquet_bytes(200_000, 25_000)
    job = submit(storage, put(storage, "in/big.parquet", data), "parquet",
                 mini_batch_size="128KB")
    partition_all(storage, job.job_id)
    job = get_job(storage, job.job_id)
    lines = lines_of(storage)
    assert len(lines) == job.mini_batches_total >= 20
    assert job.items_total == 200_000 and not job.partitioning.items_estimated
    assert sum(line.item_count for line in lines) == 200_000
    covered = []
    for line in lines:
        assert line.tabular is not None and line.tabular.rows is not None
        for s in line.tabular.slices:
            assert s.row_groups is not None
            for group in range(*s.row_groups):
                start = group * 25_000 + s.skip
                covered += range(start, start + (s.take or 25_000))
    assert covered == list(range(200_000))


def test_one_large_csv_becomes_many_mini_batches_cut_at_line_starts(storage: Storage) -> None:
    data = csv_bytes(60_000)
    job = submit(storage, put(storage, "in/big.csv", data), "csv", mini_batch_size="96KB")
    partition_all(storage, job.job_id)
    job = get_job(storage, job.job_id)
    lines = lines_of(storage)
    assert len(lines) == job.mini_batches_total >= 20
    assert job.partitioning.items_estimated is True
    assert job.items_total == pytest.approx(60_000, rel=0.1)
    assert job_progress(storage, job).items_estimated is True
    spans = [(s.start, s.stop) for line in lines for s in line.tabular.slices]  # type: ignore[union-attr]
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] and data[b[0] - 1:b[0]] == b"\n"
               for a, b in itertools.pairwise(spans))


def test_a_huge_file_is_partitioned_over_many_calls_without_gaps_or_repeats(
        storage: Storage) -> None:
    data = csv_bytes(30_000)
    path = put(storage, "in/big.csv", data)
    job = submit(storage, path, "csv", mini_batch_size="1000 rows")
    calls = partition_all(storage, job.job_id, budget_s=0.0, mini_batches_per_page=4)
    assert calls >= 8  # 30 mini-batches, 4 per page, one page per call
    lines = lines_of(storage)
    assert [line.index for line in lines] == list(range(30))
    assert [line.item_count for line in lines] == [1000] * 30
    spans = [(s.start, s.stop) for line in lines for s in line.tabular.slices]  # type: ignore[union-attr]
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


def test_a_page_written_by_a_call_that_stopped_is_sent_again_not_cut_again(
        storage: Storage) -> None:
    job = submit(storage, put(storage, "in/big.csv", csv_bytes(5_000)), "csv",
                 mini_batch_size="1000 rows")
    partition_job(storage, job.job_id, budget_s=0.0, mini_batches_per_page=2)
    first = get_job(storage, job.job_id)
    assert first.partitioning.pages == 1

    def unsaved(job: JobRecord) -> None:
        # As if the call had stopped after writing page 0, before saving where it stood.
        job.mini_batches_total = job.items_total = 0
        job.partitioning = dataclasses.replace(first.partitioning, pages=0, cursor=None)

    transition_job(storage, job.job_id, first.state, change=unsaved)
    partition_all(storage, job.job_id, mini_batches_per_page=2)
    found = messages(storage)
    assert [index for _, index, _ in found] == [0, 0, 1, 1, 2, 3, 4]
    assert get_job(storage, job.job_id).mini_batches_total == 5


def test_a_quoted_line_break_fails_the_job_with_the_reason(storage: Storage) -> None:
    data = csv_bytes(20_000).replace(b'\n10000,"row', b'\n10000,"row\nbroken')
    job = submit(storage, put(storage, "in/bad.csv", data), "csv", mini_batch_size="32KB")
    assert partition_job(storage, job.job_id).done
    job = get_job(storage, job.job_id)
    assert job.state.value == "failed"
    assert "in/bad.csv has a line with an unbalanced quote" in job.error


def test_partition_keys_on_files_need_key_value_folders(storage: Storage) -> None:
    put(storage, "files/day=1/a.txt", b"x")
    put(storage, "files/b.txt", b"x")
    spec = {"name": "files", "entry_script": "score.py",
            "source_directory": f"{storage.settings.jobs_container}/code",
            "inputs": f"{storage.settings.jobs_container}/files", "allow_reuse": False,
            "output": f"{storage.settings.jobs_container}-out/results", "partition_keys": ["day"]}
    job = submit_job(storage, spec)
    partition_job(storage, job.job_id)
    job = get_job(storage, job.job_id)
    assert job.state.value == "failed"
    assert "'files/b.txt' has no day=<value> folder" in job.error


def test_a_tabular_path_may_name_one_file_and_its_version_keys_reuse(storage: Storage) -> None:
    path = put(storage, "in/one.jsonl", b"".join(json.dumps({"id": i}).encode() + b"\n"
                                                  for i in range(10)))
    put(storage, "in/one.jsonl.bak", b"{}\n")
    job = submit(storage, path, "jsonl", allow_reuse=True)
    partition_all(storage, job.job_id)
    first = get_job(storage, job.job_id)
    [line] = lines_of(storage)
    assert line.item_count == 10 and first.items_total == 10
    put(storage, "in/one.jsonl", b'{"id": 1}\n')
    again = submit(storage, path, "jsonl", allow_reuse=True)
    partition_all(storage, again.job_id)
    assert get_job(storage, again.job_id).reuse.key != first.reuse.key


# --- the scorer's side: fetching slices ---------------------------------------------------------

def test_fetched_parquet_slices_are_sparse_copies_read_into_one_frame(
        storage: Storage, tmp_path: Path) -> None:
    data = parquet_bytes(50_000, 10_000)
    job = submit(storage, put(storage, "in/p.parquet", data), "parquet",
                 mini_batch_size="3000 rows")
    partition_all(storage, job.job_id)
    lines = lines_of(storage)
    ids: list[int] = []
    for line in lines:
        assert line.tabular is not None
        batch = fetch_batch(storage.blobs, line.container, line.tabular,
                            str(tmp_path / str(line.index)))
        frame = read_batch(batch)
        assert len(frame) == line.item_count
        ids += frame["id"].tolist()
        copy = Path(batch.slices[0].path)
        assert copy.stat().st_size == len(data)
        assert copy.stat().st_blocks * 512 < len(data)  # holes where other row groups lie
    assert ids == list(range(50_000))


def test_fetched_csv_slices_get_the_header_line(storage: Storage, tmp_path: Path) -> None:
    job = submit(storage, put(storage, "in/c.csv", csv_bytes(9_000)), "csv",
                 mini_batch_size="64KB")
    partition_all(storage, job.job_id)
    ids: list[int] = []
    for line in lines_of(storage):
        assert line.tabular is not None
        frame = read_batch(fetch_batch(storage.blobs, line.container, line.tabular,
                                       str(tmp_path / str(line.index))))
        assert list(frame.columns) == ["id", "text"]
        ids += frame["id"].tolist()
    assert ids == list(range(9_000))


def test_fetching_a_slice_of_a_replaced_file_is_refused(storage: Storage, tmp_path: Path) -> None:
    job = submit(storage, put(storage, "in/c.csv", csv_bytes(100)), "csv")
    partition_all(storage, job.job_id)
    [line] = lines_of(storage)
    put(storage, "in/c.csv", csv_bytes(100))
    assert line.tabular is not None
    with pytest.raises(InputError, match="changed after the job listed it"):
        fetch_batch(storage.blobs, line.container, line.tabular, str(tmp_path / "x"))


def test_key_value_folders_of_a_tabular_input_group_whole_files(storage: Storage) -> None:
    for store in ("a", "b"):
        for part in range(3):
            table = pa.table({"id": pa.array(range(part * 100, part * 100 + 100), pa.int64())})
            out = io.BytesIO()
            pq.write_table(table, out)
            put(storage, f"hive/store={store}/part-{part}.parquet", out.getvalue())
    job = submit(storage, f"{storage.settings.jobs_container}/hive", "parquet",
                 mini_batch_size="250 rows", partition_keys=["store"])
    partition_all(storage, job.job_id)
    lines = lines_of(storage)
    # Files of one folder are packed together; a full mini-batch closes at once, the
    # rest when the listing page ends.
    assert [(line.partition_key_value, line.item_count) for line in lines] == [
        ({"store": "a"}, 200), ({"store": "b"}, 200), ({"store": "a"}, 100),
        ({"store": "b"}, 100)]
    assert all(not s.where for line in lines for s in line.tabular.slices)  # type: ignore[union-attr]
    assert get_job(storage, job.job_id).items_total == 600
