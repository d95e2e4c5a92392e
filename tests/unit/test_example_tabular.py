"""The tabular example: its job spec, prepare.py's files and score.py as Azure ML calls it."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import joblib
import pandas as pd
import pyarrow.parquet as pq
import pytest
from example_modules import load_example

from batchfx.core.spec import load_job_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tabular"


def load_prepare() -> ModuleType:
    return load_example("tabular", name="tabular_prepare_unit")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prepare = load_prepare()
    prepare.ROW_GROUP_SIZE = 1_000  # small row groups, so that a few thousand rows have several
    return Path(prepare.prepare(tmp_path_factory.mktemp("tabular") / "generated", 5_000, 3))


def test_job_spec_reads_parquet_rows_in_mini_batches_of_rows() -> None:
    spec, _ = load_job_spec(EXAMPLE / "job.yml")
    assert spec.inputs.type == "tabular" and spec.inputs.format == "parquet"
    assert spec.mini_batch_limit.rows == 100_000
    assert spec.output_format == "parquet" and spec.process_count_per_node == 2


def test_prepare_splits_the_rows_over_files_of_several_row_groups(generated: Path) -> None:
    paths = sorted((generated / "inputs").glob("*.parquet"))
    assert [p.name for p in paths] == [f"customers-{i:03d}.parquet" for i in range(3)]
    assert [pq.read_metadata(p).num_row_groups for p in paths] == [2, 2, 2]
    table = pd.read_parquet(generated / "inputs")
    assert table["customer_id"].tolist() == list(range(5_000))


def test_prepare_is_deterministic(generated: Path, tmp_path: Path) -> None:
    again = load_prepare()
    again.ROW_GROUP_SIZE = 1_000
    other = Path(again.prepare(tmp_path / "again", 5_000, 3))
    pd.testing.assert_frame_equal(pd.read_parquet(other / "inputs"),
                                  pd.read_parquet(generated / "inputs"))
    pd.testing.assert_frame_equal(pd.read_parquet(other / "expected.parquet"),
                                  pd.read_parquet(generated / "expected.parquet"))


def test_expected_rows_are_the_models_predictions(generated: Path) -> None:
    prepare = load_prepare()
    table = pd.read_parquet(generated / "inputs")
    model = joblib.load(generated / "model" / "model.joblib")
    expected = pd.read_parquet(generated / "expected.parquet")
    assert expected["customer_id"].equals(table["customer_id"])
    features = table[prepare.NUMERIC + prepare.CATEGORICAL]
    assert (expected["churn"].to_numpy() == model.predict(features)).all()
    assert 0.2 < expected["churn"].mean() < 0.8  # both classes are predicted
