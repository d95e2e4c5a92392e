"""Shaping run()'s result in the scoring child (real child processes): join_input, and the
per_input_file segments that attribute rows to input files."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchfx.scoring import MiniBatchContext, ScriptConfig, ScriptProcess, TryOutcome, TryPhase
from batchfx.scoring.shaping import file_runs, join_input, one_row_per_item, snapshot
from batchfx.tabular.batch import ReadSlice, TabularBatch

pytestmark = pytest.mark.timeout(60)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def worker() -> Iterator[ScriptProcess]:
    with ScriptProcess(init_timeout=30, shutdown_timeout=2) as w:
        yield w


def config(tmp_path: Path, script: str, **changes: object) -> ScriptConfig:
    values: dict[str, object] = {"code_dir": str(SCRIPTS), "entry_script": script,
                                 "model_dir": None, "output_dir": str(tmp_path / "out"),
                                 "output_format": "csv", **changes}
    return ScriptConfig(**values)  # type: ignore[arg-type]


def score(worker: ScriptProcess, cfg: ScriptConfig, batch: list[str] | TabularBatch
          ) -> TryOutcome:
    context = MiniBatchContext("job-1", "mb-0", 0, 1)
    return worker.run_mini_batch(cfg, batch, context, 30)


def csv_batch(tmp_path: Path, files: dict[str, list[int]]) -> TabularBatch:
    slices = []
    for name, ids in files.items():
        path = tmp_path / name
        path.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in ids))
        slices.append(ReadSlice(str(path), name=f"in/{name}", first_row=0))
    return TabularBatch("csv", tuple(slices), sum(len(v) for v in files.values()))


def frame(outcome: TryOutcome) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO((outcome.header or b"") + outcome.part))


def test_join_input_puts_the_input_columns_first_and_renames_a_clash(
        worker: ScriptProcess, tmp_path: Path) -> None:
    cfg = config(tmp_path, "tabular_predict.py", join_input=True)
    outcome = score(worker, cfg, csv_batch(tmp_path, {"a.csv": [3, 4, 5]}))
    assert outcome.ok, outcome.error
    assert outcome.header == b"id_input,name,id,score\n"
    out = frame(outcome)
    # The script set its input's id to -1 in place: the joined columns are as read.
    assert out.to_dict(orient="list") == {"id_input": [3, 4, 5], "name": ["n3", "n4", "n5"],
                                          "id": [3, 4, 5], "score": [30, 40, 50]}
    assert outcome.segments == ()


def test_join_input_of_a_list_result_is_a_prediction_column(
        worker: ScriptProcess, tmp_path: Path) -> None:
    cfg = config(tmp_path, "tabular_predict.py", join_input=True, arguments=("--list",))
    outcome = score(worker, cfg, csv_batch(tmp_path, {"a.csv": [1, 2]}))
    assert frame(outcome).to_dict(orient="list") == {
        "id": [1, 2], "name": ["n1", "n2"], "prediction": [10, 20]}


def test_join_input_fails_the_try_without_one_row_per_input_row(
        worker: ScriptProcess, tmp_path: Path) -> None:
    cfg = config(tmp_path, "tabular_predict.py", join_input=True, arguments=("--drop", "1"))
    outcome = score(worker, cfg, csv_batch(tmp_path, {"a.csv": [1, 2, 3]}))
    assert outcome.error is not None and outcome.error.phase is TryPhase.RETURN
    assert outcome.error.message.startswith(
        "join_input: run() returned 2 rows for 3 input rows; join_input needs exactly one "
        "returned row per input row")
    assert (outcome.items, outcome.failed, outcome.part) == (3, 3, b"")


def test_per_input_file_attributes_each_file_its_row(
        worker: ScriptProcess, tmp_path: Path) -> None:
    paths = []
    for name, text in (("a.txt", "alpha"), ("bb.txt", "beta")):
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    cfg = config(tmp_path, "echo.py", output_format="text", per_input_file=True)
    outcome = score(worker, cfg, paths)
    assert outcome.part == b"a.txt alpha\nbb.txt beta\n"
    assert outcome.segments == ((0, 1, 12), (1, 1, 12))


def test_per_input_file_fails_the_try_when_files_return_no_row(
        worker: ScriptProcess, tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine")
    (tmp_path / "bad.txt").write_text("bad")
    cfg = config(tmp_path, "fail_some.py", output_format="text", per_input_file=True)
    outcome = score(worker, cfg, [str(tmp_path / "ok.txt"), str(tmp_path / "bad.txt")])
    assert outcome.error is not None and outcome.error.phase is TryPhase.RETURN
    assert outcome.error.message.startswith(
        "output_action per_input_file: run() returned 1 rows for 2 input files")


def test_per_input_file_gives_each_slice_its_rows_and_bytes(
        worker: ScriptProcess, tmp_path: Path) -> None:
    cfg = config(tmp_path, "tabular_predict.py", join_input=True, per_input_file=True)
    outcome = score(worker, cfg, csv_batch(tmp_path, {"a.csv": [1, 2], "b.csv": [30]}))
    assert outcome.ok, outcome.error
    first = b"1,n1,1,10\n2,n2,2,20\n"
    assert outcome.part == first + b"30,n30,30,300\n"
    assert outcome.segments == ((0, 2, len(first)), (1, 1, 14))


def test_per_input_file_of_parquet_counts_rows_only(
        worker: ScriptProcess, tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"id": list(range(6))}), path, row_group_size=3)
    batch = TabularBatch("parquet", (ReadSlice(str(path), (0,), name="in/x.parquet"),
                                     ReadSlice(str(path), (1,), name="in/x.parquet")), 6)
    cfg = config(tmp_path, "tabular_predict.py", output_format="parquet", per_input_file=True)
    outcome = score(worker, cfg, batch)
    assert outcome.segments == ((0, 3, 0), (1, 3, 0))
    assert pd.read_parquet(io.BytesIO(outcome.part))["score"].tolist() == [0, 10, 20, 30, 40, 50]


def test_a_window_of_a_tabular_batch_keeps_its_slice_positions(
        worker: ScriptProcess, tmp_path: Path) -> None:
    batch = csv_batch(tmp_path, {"a.csv": [1, 2], "b.csv": [3, 4]})
    windowed = TabularBatch(batch.format, batch.slices, 2, window=(1, 3))
    cfg = config(tmp_path, "tabular_predict.py", per_input_file=True)
    outcome = score(worker, cfg, windowed)
    assert [(p, n) for p, n, _ in outcome.segments] == [(0, 1), (1, 1)]


def test_join_input_renames_until_the_name_is_free() -> None:
    left = pd.DataFrame({"id": [1], "id_input": [2]}, index=[7])
    joined = join_input(left, pd.DataFrame({"id": [9], "id_input": [8]}))
    assert list(joined.columns) == ["id_input_input", "id_input_input_input", "id", "id_input"]
    assert joined.iloc[0].tolist() == [1, 2, 9, 8]


def test_snapshot_does_not_see_changes_made_in_place() -> None:
    data = pd.DataFrame({"a": [1, 2]})
    kept = snapshot(data)
    data["a"] = 0
    data.loc[0, "a"] = 5
    assert kept["a"].tolist() == [1, 2]


def test_one_row_per_item_names_the_rule_and_the_counts() -> None:
    one_row_per_item(3, 3, option="x", unit="files")
    with pytest.raises(ValueError, match="x: run\\(\\) returned 4 rows for 3 input files; x "
                                         "needs exactly one returned row per input file"):
        one_row_per_item(4, 3, option="x", unit="files")
    assert file_runs(2) == [(0, 1), (1, 1)]
