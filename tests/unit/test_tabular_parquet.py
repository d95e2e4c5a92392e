"""Parquet pieces from the footer (row groups, row ranges), and reading slices into a
DataFrame in the scoring child (local files: row groups, row ranges, key filters)."""

from __future__ import annotations

import io
import itertools
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchfx.core.errors import InputError
from batchfx.core.sizes import MiniBatchSize
from batchfx.storage.blobs import BlobRef
from batchfx.tabular.batch import ReadSlice, TabularBatch
from batchfx.tabular.grouping import chunk_rows, group_rows
from batchfx.tabular.parquet import RowGroup, footer_offset, row_groups, split_row_group
from batchfx.tabular.pieces import FileCut, file_pieces
from batchfx.tabular.reading import read_batch


def parquet_bytes(rows: int, group_size: int, **columns: list[object]) -> bytes:
    table = pa.table({"id": pa.array(range(rows), pa.int64()), **columns})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=group_size)
    return out.getvalue()


class Reads:
    def __init__(self, data: bytes) -> None:
        self.data, self.read = data, 0

    def __call__(self, offset: int, length: int) -> bytes:
        self.read += length
        return self.data[offset : offset + length]


def pieces_of(data: bytes, limit: MiniBatchSize, keys: tuple[str, ...] = (),
              cursor: dict[str, int] | None = None) -> tuple[list, Reads]:  # type: ignore[type-arg]
    reads = Reads(data)
    cut = FileCut(reads, "c", BlobRef("in/x.parquet", len(data), "e"), "parquet", limit, keys)
    return list(file_pieces(cut, cursor or {})), reads


def test_row_groups_span_their_column_chunks_and_the_footer_follows() -> None:
    data = parquet_bytes(1000, 300, name=[f"n{i}" for i in range(1000)])
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    groups = row_groups(metadata, len(data))
    assert [g.rows for g in groups] == [300, 300, 300, 100]
    assert groups[0].start == 4
    assert all(a.stop <= b.start for a, b in itertools.pairwise(groups))
    assert groups[-1].stop <= footer_offset(metadata, len(data)) < len(data)


@pytest.mark.parametrize(("limit", "expected"), [
    (MiniBatchSize(rows=100), [(0, None)]),
    (MiniBatchSize(rows=40), [(0, 40), (40, 40), (80, 20)]),
    (MiniBatchSize(bytes=1000), [(0, None)]),
    (MiniBatchSize(bytes=300), [(0, 25), (25, 25), (50, 25), (75, 25)]),
])
def test_a_row_group_larger_than_the_limit_splits_into_row_ranges(
        limit: MiniBatchSize, expected: list[tuple[int, int | None]]) -> None:
    group = RowGroup(0, 100, 4, 1004)
    assert [(r.skip, r.take) for r in split_row_group(group, limit)] == expected


def test_pieces_of_a_parquet_file_come_from_the_footer_alone() -> None:
    data = parquet_bytes(100_000, 20_000, v=[float(i) for i in range(100_000)])
    pieces, reads = pieces_of(data, MiniBatchSize(rows=15_000))
    assert sum(p.slice.rows for p in pieces) == 100_000
    assert [(p.slice.row_groups, p.slice.skip, p.slice.take) for p in pieces[:3]] == [
        ((0, 1), 0, 15_000), ((0, 1), 15_000, 5_000), ((1, 2), 0, 15_000)]
    assert reads.read <= 64 * 1024 < len(data)


def test_resuming_a_parquet_file_at_a_cursor() -> None:
    data = parquet_bytes(10_000, 1_000)
    pieces, _ = pieces_of(data, MiniBatchSize(rows=400))
    again, _ = pieces_of(data, MiniBatchSize(rows=400), cursor=pieces[7].cursor)
    assert [p.slice for p in again] == [p.slice for p in pieces[7:]]


def test_parquet_partition_keys_read_only_the_key_column() -> None:
    rows = 30_000
    data = parquet_bytes(rows, 10_000, k=[f"g{(i // 300) % 4}" for i in range(rows)],
                         payload=[random.Random(i).randbytes(40).hex() for i in range(rows)])
    pieces, reads = pieces_of(data, MiniBatchSize(rows=1000), keys=("k",))
    assert sum(p.slice.rows for p in pieces) == rows
    assert {p.group for p in pieces} == {("g0",), ("g1",), ("g2",), ("g3",)}
    assert all(p.slice.rows <= 1000 for p in pieces)
    assert reads.read < len(data) / 3


def test_a_file_that_is_not_parquet_is_named() -> None:
    with pytest.raises(InputError, match=r"in/x.parquet is not a readable Parquet file"):
        pieces_of(b"id,v\n1,2\n" * 100, MiniBatchSize(rows=10))


def test_group_rows_in_order_of_first_appearance_with_nulls() -> None:
    found = group_rows([["a", "b", "a", None, "b"], ["1", "1", "1", "2", "1"]])
    assert [(g, r.tolist()) for g, r in found] == [
        (("a", "1"), [0, 2]), (("b", "1"), [1, 4]), ((None, "2"), [3])]


def test_chunk_rows_stays_within_the_limit() -> None:
    import numpy as np

    rows = np.array([0, 2, 5, 7, 9])
    assert [(c.tolist(), w) for c, w in chunk_rows(rows, None, 2)] == [
        ([0, 2], 2), ([5, 7], 2), ([9], 1)]
    weights = np.full(10, 3, np.int64)
    assert [w for _, w in chunk_rows(rows, weights, 7)] == [6, 6, 3]


# --- reading slices (the child's side) -----------------------------------------------------

def test_reading_row_groups_row_ranges_and_key_filters_of_a_parquet_file(
        tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(parquet_bytes(1000, 100, k=[["a", "b", None][i % 3] for i in range(1000)]))
    batch = TabularBatch("parquet", (
        ReadSlice(str(path), (0, 1)),
        ReadSlice(str(path), (5,), skip=10, take=5),
        ReadSlice(str(path), (9,), where=(("k", None),)),
    ), rows=0)
    frame = read_batch(batch)
    expected = [*range(200), *range(510, 515), *[i for i in range(900, 1000) if i % 3 == 2]]
    assert frame["id"].tolist() == expected
    assert list(frame.index) == list(range(len(expected)))


def test_row_ranges_of_one_row_group_decode_it_once_and_read_the_same_rows(
        tmp_path: Path) -> None:
    from batchfx.tabular import reading

    path = tmp_path / "x.parquet"
    path.write_bytes(parquet_bytes(1000, 500))
    ranges = [(0, 120), (120, 200), (320, 180)]
    streamed = [read_batch(TabularBatch("parquet", (ReadSlice(str(path), (1,), skip=s, take=t),
                                                    ), 0))["id"].tolist() for s, t in ranges]
    decodes = []
    real = pq.ParquetFile.read_row_group

    def counting(self: pq.ParquetFile, i: int, *args: object, **kwargs: object) -> pa.Table:
        decodes.append(i)
        return real(self, i, *args, **kwargs)

    pq.ParquetFile.read_row_group = counting  # type: ignore[method-assign]
    try:
        kept = [read_batch(TabularBatch("parquet", (ReadSlice(
            str(path), (1,), skip=s, take=t, name="in/x.parquet", version="v1"),), 0)
        )["id"].tolist() for s, t in ranges]
    finally:
        pq.ParquetFile.read_row_group = real  # type: ignore[method-assign]
        reading._groups.clear()
    assert kept == streamed == [list(range(500 + s, 500 + s + t)) for s, t in ranges]
    assert decodes == [1]  # the row group once, for the three slices of it


def test_reading_csv_slices_keeps_key_columns_as_text_and_joins_in_order(
        tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,k\n1,007\n2,8\n3,007\n")
    (tmp_path / "b.csv").write_text("id,k\n4,007\n")
    batch = TabularBatch("csv", (ReadSlice(str(tmp_path / "a.csv"), where=(("k", "007"),)),
                                 ReadSlice(str(tmp_path / "b.csv"), where=(("k", "007"),))), 3)
    frame = read_batch(batch)
    assert frame["id"].tolist() == [1, 3, 4]
    assert frame["k"].tolist() == ["007", "007", "007"]


def test_reading_slices_typed_differently_still_gives_one_frame(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"id": 1, "v": 5}\n')
    (tmp_path / "b.jsonl").write_text('{"id": 2, "v": "text"}\n')
    batch = TabularBatch("jsonl", (ReadSlice(str(tmp_path / "a.jsonl")),
                                   ReadSlice(str(tmp_path / "b.jsonl"))), 2)
    frame = read_batch(batch)
    assert frame["v"].tolist() == [5, "text"]
