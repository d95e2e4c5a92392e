"""The tabular example end to end with `batchfx run`: one million rows of Parquet scored by
an Azure ML tabular scoring script, every row exactly once and in order, as Parquet or CSV
that one line of pandas loads; the same rows as one file or as eight."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from example_modules import load_example

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tabular"
ROWS = 1_000_000

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example prepared once (the model, 1M rows in one file and in eight), and the
    model's predictions computed directly."""
    prepare = load_example("tabular")
    root = tmp_path_factory.mktemp("tabular-example")
    generated = prepare.prepare(root / "generated", ROWS, expected=False)
    table = pd.read_parquet(generated / "inputs")
    prepare.write_inputs(generated / "inputs-8", pa.Table.from_pandas(table, preserve_index=False),
                         8)
    model = joblib.load(generated / "model" / "model.joblib")
    features = table[prepare.NUMERIC + prepare.CATEGORICAL]
    return {"root": root, "ids": table["customer_id"], "churn": model.predict(features),
            "probability": model.predict_proba(features)[:, 1]}


def _run_example(example: dict[str, Any], connection_string: str, name: str, tmp_path: Path,
                 **changes: Any) -> Path:
    """`batchfx run` the example's job.yml (with ``changes``) on the module's Azurite."""
    spec = yaml.safe_load((EXAMPLE / "job.yml").read_text())
    spec.update(source_directory=str(EXAMPLE / "code"), **changes)
    job = example["root"] / f"{tmp_path.name}.yml"
    job.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "AzureWebJobsStorage": connection_string,
           "BATCHFX_JOBS_CONTAINER": name, "BATCHFX_QUEUE_NAME": name,
           "BATCHFX_WORK_DIR": str(tmp_path / "work")}
    done = subprocess.run([sys.executable, "-m", "batchfx", "run", str(job),
                           "--output", str(tmp_path / "out"), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp_path / "out"


def _check(out: pd.DataFrame, example: dict[str, Any]) -> None:
    assert out["customer_id"].equals(example["ids"])  # every id exactly once, in order
    assert (out["churn"].to_numpy() == example["churn"]).all()
    np.testing.assert_allclose(out["churn_probability"], example["probability"], rtol=1e-12)


def test_the_example_scores_a_million_parquet_rows_once_each_in_order(
        example: dict[str, Any], connection_string: str, unique_name: str,
        tmp_path: Path) -> None:
    out_dir = _run_example(example, connection_string, unique_name, tmp_path)
    out = pd.read_parquet(out_dir / "predictions.parquet")
    _check(out, example)
    assert list(out.columns) == ["customer_id", "churn", "churn_probability"]
    report = pd.read_csv(out_dir / "processed_mini-batches.csv")
    assert report["total"].tolist() == [100_000] * 10  # one row group per mini-batch


def test_the_same_rows_over_eight_parquet_files_give_the_same_output(
        example: dict[str, Any], connection_string: str, unique_name: str,
        tmp_path: Path) -> None:
    inputs = {"path": "generated/inputs-8", "type": "tabular", "format": "parquet"}
    out_dir = _run_example(example, connection_string, unique_name, tmp_path, inputs=inputs)
    _check(pd.read_parquet(out_dir / "predictions.parquet"), example)


def test_a_single_local_parquet_file_stays_a_tabular_input(
        example: dict[str, Any], connection_string: str, unique_name: str,
        tmp_path: Path) -> None:
    """`batchfx run` uploads a local file named as the input; tabular, it is still split."""
    inputs = {"path": "generated/inputs/customers-000.parquet", "type": "tabular",
              "format": "parquet"}
    out_dir = _run_example(example, connection_string, unique_name, tmp_path, inputs=inputs)
    _check(pd.read_parquet(out_dir / "predictions.parquet"), example)
    report = pd.read_csv(out_dir / "processed_mini-batches.csv")
    assert report["total"].tolist() == [100_000] * 10


def test_the_example_with_csv_output_loads_with_read_csv(
        example: dict[str, Any], connection_string: str, unique_name: str,
        tmp_path: Path) -> None:
    out_dir = _run_example(example, connection_string, unique_name, tmp_path,
                           output_format="csv", append_row_file_name="predictions.csv")
    _check(pd.read_csv(out_dir / "predictions.csv"), example)
