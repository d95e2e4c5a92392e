"""Tabular inputs end to end: one big file split into many mini-batches, read into
DataFrames, every row scored exactly once and written in input order."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from e2e_app import App


def _upload(app: App, name: str, body: bytes) -> str:
    return app.upload_tabular(name, body)


def _spec(app: App, path: str, fmt: str, **changes: Any) -> dict[str, Any]:
    return app.tabular_spec("tabular-job", "tabular_echo.py", path, fmt, **changes)


def _results(app: App, view: dict[str, Any]) -> pd.DataFrame:
    assert view["state"] == "completed", view
    text = app.outputs(view)["parallel_run_step.txt"]
    out = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    return out.astype({"id": "int64", "double": "int64", "mini_batch": "int64"})


def test_a_single_parquet_file_is_split_into_many_mini_batches_and_every_row_scored_once(
        app: App) -> None:
    rows = 200_000
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "value": pa.array([i * 0.5 for i in range(rows)]),
                      "label": pa.array([f"row-{i}" for i in range(rows)])})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=30_000)
    path = _upload(app, "big.parquet", buffer.getvalue())
    job = app.submit(_spec(app, path, "parquet", mini_batch_size="256KB"))
    view = app.wait(job, timeout=240)
    out = _results(app, view)
    assert view["mini_batches"]["total"] >= 10
    assert view["items"] == {"total": rows, "succeeded": rows, "failed": 0, "pending": 0}
    assert view["items_estimated"] is False
    assert out["id"].tolist() == list(range(rows))
    assert (out["double"] == out["id"] * 2).all()
    assert out["mini_batch"].is_monotonic_increasing


def _csv(rows: int) -> bytes:
    lines = ["id,text,amount"]
    lines += [f'{i},"item {i}, size {"x" * (i % 37)}",{i % 1000}' for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _report(app: App, view: dict[str, Any]) -> pd.DataFrame:
    text = app.outputs(view)["processed_mini-batches.csv"]
    return pd.read_csv(io.StringIO(text))


def test_a_single_large_csv_is_cut_at_line_starts_into_many_mini_batches(app: App) -> None:
    rows = 50_000
    path = _upload(app, "big.csv", _csv(rows))
    job = app.submit(_spec(app, path, "csv", mini_batch_size="64KB"))
    view = app.wait(job, timeout=240)
    out = _results(app, view)
    assert view["mini_batches"]["total"] >= 20
    # Rows of text cut by bytes are counted as they are read: exact once all are done.
    assert view["items"] == {"total": rows, "succeeded": rows, "failed": 0, "pending": 0}
    assert view["items_estimated"] is False
    assert out["id"].tolist() == list(range(rows))
    assert (out["double"] == out["id"] * 2).all()
    report = _report(app, view)
    assert report["total"].sum() == rows
    assert (report["status"] == "succeeded").all()


def test_a_row_limit_gives_mini_batches_of_exactly_that_many_rows(app: App) -> None:
    path = _upload(app, "rows.csv", _csv(23_000))
    job = app.submit(_spec(app, path, "csv", mini_batch_size="5000 rows"))
    view = app.wait(job, timeout=240)
    out = _results(app, view)
    assert view["mini_batches"]["total"] == 5
    assert _report(app, view)["total"].tolist() == [5000, 5000, 5000, 5000, 3000]
    assert out["id"].tolist() == list(range(23_000))


def test_json_lines_files_of_a_folder_are_read_in_input_order(app: App) -> None:
    ids = iter(range(30_000))
    for part in range(3):
        body = "".join(json.dumps({"id": next(ids), "name": f"n{part}"}) + "\n"
                       for _ in range(10_000))
        _upload(app, f"folder/part-{part}.jsonl", body.encode())
    path = f"{app.settings.jobs_container}/tabular/folder"
    job = app.submit(_spec(app, path, "jsonl", mini_batch_size="100KB"))
    view = app.wait(job, timeout=240)
    out = _results(app, view)
    assert view["mini_batches"]["total"] >= 9
    assert out["id"].tolist() == list(range(30_000))


def _check_groups(out: pd.DataFrame, key: str) -> None:
    assert (out[f"{key}_row"] == out[f"{key}_context"]).all()
    per_batch = out.groupby("mini_batch")[f"{key}_context"].nunique()
    assert (per_batch == 1).all()  # no mini-batch mixes key values
    for _, rows in out.groupby(f"{key}_context"):
        assert rows["id"].is_monotonic_increasing  # input order within each group


def test_partition_keys_on_a_parquet_column_never_mix_groups(app: App) -> None:
    rows = 60_000
    stores = [f"s{(i // 500) % 7}" for i in range(rows)]  # runs of 500 rows, interleaved
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "store": stores})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=10_000)
    path = _upload(app, "stores.parquet", buffer.getvalue())
    job = app.submit(_spec(app, path, "parquet", mini_batch_size="4000 rows",
                           partition_keys=["store"]))
    view = app.wait(job, timeout=240)
    out = _results(app, view)
    assert view["items"]["succeeded"] == rows
    assert sorted(out["id"].tolist()) == list(range(rows))
    _check_groups(out, "store")
    assert out["store_context"].nunique() == 7


def test_partition_keys_on_a_csv_column_never_mix_groups(app: App) -> None:
    rows = 20_000
    lines = ["id,region,amount"] + [f"{i},{'00' + str(i % 3)},{i}" for i in range(rows)]
    path = _upload(app, "regions.csv", ("\n".join(lines) + "\n").encode())
    job = app.submit(_spec(app, path, "csv", mini_batch_size="64KB",
                           partition_keys=["region"]))
    view = app.wait(job, timeout=240)
    out = _results(app, view)
    assert view["items"] == {"total": rows, "succeeded": rows, "failed": 0, "pending": 0}
    assert sorted(out["id"].tolist()) == list(range(rows))
    _check_groups(out, "region")
    assert sorted(out["region_context"].unique()) == ["000", "001", "002"]  # text kept


def test_partition_keys_on_file_inputs_group_files_by_key_value_folders(app: App) -> None:
    files = {f"day={day}/shop={shop}/f{n}.txt": "x" for day in ("d1", "d2")
             for shop in ("a", "b") for n in range(3)}
    spec = app.spec("partition_key_files.py", files, mini_batch_size=2,
                    partition_keys=["shop"])
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed", view
    assert view["items"]["succeeded"] == 12
    lines = app.outputs(view)["parallel_run_step.txt"].splitlines()
    assert sorted(line.rsplit(" ", 1)[0] for line in lines) == sorted(
        ['{"shop": "a"}'] * 6 + ['{"shop": "b"}'] * 6)
    assert view["mini_batches"]["total"] == 6  # 6 files per shop, 2 per mini-batch
