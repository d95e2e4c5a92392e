"""Fetched tabular mini-batches know where their rows come from: each slice carries its blob
name and, where known, its first row in the file (Parquet always, text at the file's top)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_tabular import csv_bytes, lines_of, parquet_bytes, partition_all, put, storage, submit

from batchfx.storage import Storage
from batchfx.tabular.fetch import fetch_batch
from batchfx.tabular.reading import read_batch_with_sources

pytestmark = pytest.mark.azurite
__all__ = ["storage"]  # the fixture, shared with test_tabular


def _rows(storage: Storage, tmp_path: Path) -> list[tuple[str, int | None, int]]:
    """(file, row in the file, id) of every row of every mini-batch, in order."""
    out = []
    for line in lines_of(storage):
        assert line.tabular is not None
        frame, sources = read_batch_with_sources(fetch_batch(
            storage.blobs, line.container, line.tabular, str(tmp_path / str(line.index))))
        assert sum(s.rows for s in sources) == len(frame)
        described = [(s.file_name, None if s.first_row is None else s.first_row + i)
                     for s in sources for i in range(s.rows)]
        out += [(*d, i) for d, i in zip(described, frame["id"].tolist(), strict=True)]
    return out


def test_parquet_row_ranges_name_their_file_and_rows(storage: Storage, tmp_path: Path) -> None:
    put(storage, "in/a.parquet", parquet_bytes(25_000, 10_000))
    put(storage, "in/b.parquet", parquet_bytes(7_000, 10_000))
    job = submit(storage, f"{storage.settings.jobs_container}/in", "parquet",
                 mini_batch_size="3000 rows")
    partition_all(storage, job.job_id)
    rows = _rows(storage, tmp_path)
    assert rows == ([("in/a.parquet", i, i) for i in range(25_000)]
                    + [("in/b.parquet", i, i) for i in range(7_000)])


def test_text_cut_by_bytes_numbers_only_the_rows_of_its_first_slice(
        storage: Storage, tmp_path: Path) -> None:
    job = submit(storage, put(storage, "in/c.csv", csv_bytes(9_000)), "csv",
                 mini_batch_size="64KB")
    partition_all(storage, job.job_id)
    rows = _rows(storage, tmp_path)
    assert [i for _, _, i in rows] == list(range(9_000))
    known = [(row, i) for _, row, i in rows if row is not None]
    assert known and all(row == i for row, i in known)
    assert known == [(i, i) for i in range(len(known))]  # the first slice only
    assert len(known) < 9_000 and {name for name, _, _ in rows} == {"in/c.csv"}
