"""Where each row of a tabular mini-batch comes from: read_batch_with_sources gives runs of
consecutive rows with their slice, input file and row number there, honouring row ranges,
key filters and the mini-batch's window. Every input row's ``id`` is its row in its file,
so a source is right when the ids it describes are its row numbers."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchfx.tabular.batch import ReadSlice, TabularBatch
from batchfx.tabular.reading import (
    RowSource,
    publish_row_sources,
    read_batch,
    read_batch_with_sources,
    row_sources,
)


def write_parquet(path: Path, rows: int, group_size: int) -> str:
    keys = [["a", "b", None][(i // 7) % 3] for i in range(rows)]  # runs of 7 rows per key
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "k": keys})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=group_size)
    path.write_bytes(out.getvalue())
    return str(path)


def described(sources: tuple[RowSource, ...]) -> list[tuple[str, int | None]]:
    """(file, row) of each row the sources describe, in order."""
    return [(s.file_name, None if s.first_row is None else s.first_row + i)
            for s in sources for i in range(s.rows)]


def check(frame: pd.DataFrame, sources: tuple[RowSource, ...], names: list[str]) -> None:
    """The sources cover the frame exactly and name each row's file and row (= its id)."""
    assert sum(s.rows for s in sources) == len(frame)
    assert all(s.rows > 0 for s in sources)
    assert described(sources) == list(zip(names, frame["id"].tolist(), strict=True))


def test_parquet_row_groups_and_row_ranges_give_their_rows_in_the_file(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", 1000, 100)
    batch = TabularBatch("parquet", (
        ReadSlice(path, (0, 1), name="in/x.parquet", first_row=0),
        ReadSlice(path, (5,), skip=10, take=5, name="in/x.parquet", first_row=510),
    ), rows=205)
    frame, sources = read_batch_with_sources(batch)
    assert sources == (RowSource(0, "in/x.parquet", 0, 200), RowSource(1, "in/x.parquet", 510, 5))
    check(frame, sources, ["in/x.parquet"] * 205)


def test_key_filters_give_one_source_per_run_of_consecutive_rows(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", 100, 50)
    batch = TabularBatch("parquet", (
        ReadSlice(path, (0,), skip=3, take=40, where=(("k", "b"),), name="x", first_row=3),
        ReadSlice(path, (1,), where=(("k", None),), name="x", first_row=50),
    ), rows=0)
    frame, sources = read_batch_with_sources(batch)
    assert [(s.slice, s.first_row, s.rows) for s in sources] == [
        (0, 7, 7), (0, 28, 7), (1, 56, 7), (1, 77, 7), (1, 98, 2)]
    check(frame, sources, ["x"] * len(frame))


def test_slices_of_several_files_keep_their_order_and_names(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,v\n0,x\n1,y\n")
    (tmp_path / "b.csv").write_text("id,v\n0,z\n\n1,w\n2,q\n")  # an empty line is not a row
    batch = TabularBatch("csv", (ReadSlice(str(tmp_path / "a.csv"), name="d/a.csv", first_row=0),
                                 ReadSlice(str(tmp_path / "b.csv"), name="d/b.csv", first_row=0)),
                         rows=5)
    frame, sources = read_batch_with_sources(batch)
    assert [(s.slice, s.file_name) for s in sources] == [(0, "d/a.csv"), (1, "d/b.csv")]
    check(frame, sources, ["d/a.csv"] * 2 + ["d/b.csv"] * 3)


@pytest.mark.parametrize("window", [(0, None), (150, None), (150, 203), (199, 201), (0, 0),
                                    (203, 203), (300, None), (10, 5)])
def test_a_window_keeps_the_sources_of_its_rows_only(
        tmp_path: Path, window: tuple[int, int | None]) -> None:
    path = write_parquet(tmp_path / "x.parquet", 1000, 100)
    slices = (ReadSlice(path, (0, 1), name="x", first_row=0),
              ReadSlice(path, (5,), skip=10, take=5, name="x", first_row=510))
    frame, sources = read_batch_with_sources(TabularBatch("parquet", slices, 205, window))
    whole = read_batch(TabularBatch("parquet", slices, 205))
    start, stop = window
    assert frame["id"].tolist() == whole["id"].iloc[start:stop].tolist()
    check(frame, sources, ["x"] * len(frame))


def test_a_window_over_filtered_runs_narrows_the_runs(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", 100, 100)
    slices = (ReadSlice(path, (0,), where=(("k", "a"),), name="x", first_row=0),)
    frame, sources = read_batch_with_sources(TabularBatch("parquet", slices, 0, (5, 16)))
    assert [(s.first_row, s.rows) for s in sources] == [(5, 2), (21, 7), (42, 2)]
    check(frame, sources, ["x"] * 11)


def test_text_cut_after_the_top_of_its_file_has_unknown_rows(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text('{"id": 7, "k": "a"}\n{"id": 8, "k": "b"}\n'
                                      '{"id": 9, "k": "a"}\n')
    piece = ReadSlice(str(tmp_path / "s.jsonl"), where=(("k", "a"),), name="big.jsonl")
    frame, sources = read_batch_with_sources(TabularBatch("jsonl", (piece,), 2, (1, None)))
    assert frame["id"].tolist() == [9]
    assert sources == (RowSource(0, "big.jsonl", None, 1),)


def test_slices_without_rows_give_no_source(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", 10, 10)
    batch = TabularBatch("parquet", (
        ReadSlice(path, (0,), where=(("k", "zzz"),), name="x", first_row=0),
        ReadSlice(path, (0,), skip=2, take=3, name="x", first_row=2),
    ), rows=3)
    frame, sources = read_batch_with_sources(batch)
    assert sources == (RowSource(1, "x", 2, 3),)
    check(frame, sources, ["x"] * 3)


def test_read_batch_gives_the_same_frame(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", 300, 100)
    batch = TabularBatch("parquet", (ReadSlice(path, (0, 1, 2), where=(("k", "b"),)),), 0,
                         (3, 40))
    pd.testing.assert_frame_equal(read_batch(batch), read_batch_with_sources(batch)[0])


def test_published_sources_belong_to_that_frame_object_only(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", 10, 10)
    frame, sources = read_batch_with_sources(
        TabularBatch("parquet", (ReadSlice(path, (0,), name="x", first_row=0),), 10))
    publish_row_sources(frame, sources)
    assert row_sources(frame) == sources
    assert row_sources(frame.copy()) is None
    publish_row_sources(frame.copy(), ())
    assert row_sources(frame) is None
