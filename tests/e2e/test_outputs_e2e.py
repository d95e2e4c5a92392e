"""Output options end to end: input columns joined to predictions, the append_row file
partitioned like the input, one output per input file, a CSV header that changes between
mini-batches, and custom outputs two workers write under one name."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from e2e_app import App, lines

from batchfx.services.upload import download_outputs


def _upload(app: App, name: str, body: bytes) -> str:
    return app.upload_tabular(name, body)


def _spec(app: App, path: str, fmt: str, **changes: Any) -> dict[str, Any]:
    return app.tabular_spec("outputs-job", "tabular_predict.py", path, fmt, **changes)


def _download(app: App, view: dict[str, Any]) -> Path:
    dest = app.tmp / f"out-{view['id']}"
    download_outputs(app.storage, view["output"]["location"], dest)
    return dest


def _csv(ids: range, *, store: Any = None) -> bytes:
    head = "id,name" + (",store" if store else "")
    rows = [f"{i},n{i}" + (f",{store(i)}" if store else "") for i in ids]
    return ("\n".join([head, *rows]) + "\n").encode()


def test_join_input_writes_each_input_row_next_to_its_prediction(app: App) -> None:
    path = _upload(app, "join/a.csv", _csv(range(3000)))
    spec = _spec(app, path, "csv", join_input=True, mini_batch_size="500 rows")
    view = app.wait(app.submit(spec), timeout=180)
    assert view["state"] == "completed", view
    out = pd.read_csv(io.StringIO(app.outputs(view)["parallel_run_step.txt"]))
    assert list(out.columns) == ["id_input", "name", "id", "score"]  # the clash renamed
    assert out["id_input"].tolist() == list(range(3000))  # not the -1 run() wrote in place
    assert (out["name"] == "n" + out["id_input"].astype(str)).all()
    assert (out["score"] == out["id"] * 10).all() and (out["id"] == out["id_input"]).all()


def test_partition_output_writes_one_file_per_key_value_in_hive_folders(app: App) -> None:
    stores = ["north", "south west", ""]  # "": a missing value, Hive's default partition
    path = _upload(app, "keyed/sales.csv", _csv(range(900), store=lambda i: stores[i % 3]))
    spec = _spec(app, path, "csv", output_format="parquet", partition_keys=["store"],
                 partition_output=True, mini_batch_size="100 rows",
                 append_row_file_name="scores.parquet")
    view = app.wait(app.submit(spec), timeout=180)
    assert view["state"] == "completed", view
    dest = _download(app, view)
    found = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("scores.parquet"))
    assert found == ["store=__HIVE_DEFAULT_PARTITION__/scores.parquet",
                     "store=north/scores.parquet", "store=south%20west/scores.parquet"]
    assert not (dest / "scores.parquet").exists()
    north = pd.read_parquet(dest / "store=north" / "scores.parquet")
    assert north["id"].tolist() == list(range(0, 900, 3))  # in input order
    # A Hive-aware reader gets the key back from the folders, decoded.
    whole = ds.dataset([str(dest / f) for f in found], format="parquet", partitioning="hive",
                       partition_base_dir=str(dest)).to_table().to_pandas()
    assert sorted(whole["id"]) == list(range(900))
    expected = whole["id"].map(lambda i: stores[i % 3] or None)
    assert whole["store"].tolist() == expected.tolist()


def test_partition_output_of_file_inputs_follows_their_key_folders(app: App) -> None:
    files = {f"day={day}/shop={shop}/f{n}.txt": f"{day}{shop}{n}" for day in ("d1", "d2")
             for shop in ("a", "b") for n in range(2)}
    spec = app.spec("echo.py", files, partition_keys=["shop"], partition_output=True)
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed", view
    outputs = app.outputs(view)
    assert sorted(lines(outputs["shop=a/parallel_run_step.txt"])) == sorted(
        f"f{n}.txt {day}a{n}" for day in ("d1", "d2") for n in range(2))
    assert len(lines(outputs["shop=b/parallel_run_step.txt"])) == 4
    assert "parallel_run_step.txt" not in outputs
    where = view["output"]
    assert where["append_row_file"] is None
    assert where["append_row_files"] == f"{where['location']}/shop=*/parallel_run_step.txt"


def test_per_input_file_gives_each_tabular_file_its_own_output_in_row_order(app: App) -> None:
    _upload(app, "many/a.csv", _csv(range(0, 2500)))
    _upload(app, "many/sub/b.csv", _csv(range(5000, 5040)))
    path = f"{app.settings.jobs_container}/tabular/many"
    spec = _spec(app, path, "csv", join_input=True, output_action="per_input_file",
                 mini_batch_size="8KB")  # a.csv is cut into several mini-batches
    view = app.wait(app.submit(spec), timeout=180)
    assert view["state"] == "completed", view
    assert view["mini_batches"]["total"] >= 4
    outputs = app.outputs(view)
    assert "parallel_run_step.txt" not in outputs
    a = pd.read_csv(io.StringIO(outputs["a.csv"]))
    assert list(a.columns) == ["id_input", "name", "id", "score"]
    assert a["id_input"].tolist() == list(range(2500))
    assert (a["score"] == a["id"] * 10).all()
    b = pd.read_csv(io.StringIO(outputs["sub/b.csv"]))
    assert b["id"].tolist() == list(range(5000, 5040))


def test_per_input_file_of_parquet_row_groups_makes_parquet_files(app: App) -> None:
    table = pa.table({"id": pa.array(range(10_000), pa.int64())})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=1000)
    _upload(app, "pq/big.parquet", buffer.getvalue())
    path = f"{app.settings.jobs_container}/tabular/pq"
    spec = _spec(app, path, "parquet", output_format="parquet",
                 output_action="per_input_file", mini_batch_size="2500 rows")
    view = app.wait(app.submit(spec), timeout=180)
    assert view["state"] == "completed", view
    assert view["mini_batches"]["total"] >= 4
    out = pd.read_parquet(_download(app, view) / "big.parquet")
    assert out["id"].tolist() == list(range(10_000))
    assert (out["score"] == out["id"] * 10).all()


def test_per_input_file_of_files_writes_one_file_each_and_names_a_missing_row(
        app: App) -> None:
    files = {"x/a.txt": "ok", "x/b.txt": "bad", "y/c.txt": "ok"}
    spec = app.spec("fail_some.py", files, output_action="per_input_file", mini_batch_size=1,
                    run_max_try=1)
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed", view
    outputs = app.outputs(view)
    assert (outputs["x/a.txt"], outputs["y/c.txt"]) == ("a.txt ok\n", "c.txt ok\n")
    assert view["output"]["append_row_file"] is None
    assert view["output"]["per_input_files"].startswith(view["output"]["location"] + "/")
    assert "x/b.txt" not in outputs
    assert ("output_action per_input_file: run() returned 0 rows for 1 input files"
            in outputs["errors.txt"])


def test_csv_columns_that_change_between_mini_batches_fail_the_job_clearly(app: App) -> None:
    files = {f"f{i}.txt": "x" for i in range(4)}
    spec = app.spec("columns_vary.py", files, output_format="csv", mini_batch_size=2)
    view = app.wait(app.submit(spec))
    assert view["state"] == "failed", view
    assert ("csv output 'parallel_run_step.txt': mini-batch 1 returned columns "
            "['file', 'value'] but mini-batch 0 returned ['file', 'score']") in view["reason"]
    assert "same columns, in the same order" in view["reason"]


def test_custom_outputs_two_workers_write_under_one_name_are_reported(app: App) -> None:
    workers_dir = app.tmp / "workers"
    workers_dir.mkdir()
    files = {f"f{i}.txt": "x" for i in range(4)}
    spec = app.spec("writes_outputs.py", files, output_action="summary_only",
                    mini_batch_size=1, process_count_per_node=2,
                    environment_variables={"WORKERS_DIR": str(workers_dir)})
    view = app.wait(app.submit(spec), timeout=180)
    outputs = app.outputs(view)
    assert sorted(n for n in outputs if n.startswith("mb-")) == [f"mb-{i}.txt" for i in range(4)]
    assert view["items"]["succeeded"] == 4
    assert view["state"] == "failed", view
    assert "custom output 'summary.txt' was written by workers " in view["reason"]
    named = view["reason"].split("was written by workers ")[1].split(": only")[0]
    # host:pid-p<slot> of each script process (of one worker process or of two)
    assert len(set(re.findall(r"[\w.-]+:\d+-p\d+", named))) == 2, named
    # The first worker's copy stays whole; the other's was never uploaded over it.
    assert len({line.split()[0] for line in lines(outputs["summary.txt"])}) == 1
    assert "custom output 'summary.txt'" in outputs["job_result.txt"]
