"""An MLflow model scored with no scoring script: through `batchfx run` (the example), and
over tabular Parquet inputs, where each output row names its input file and row there."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from e2e_app import App

from batchfx.services.upload import upload_folder

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mlflow"


def test_mlflow_model_without_entry_script_gives_azure_ml_rows(
        connection_string: str, unique_name: str, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("mlflow_prepare", EXAMPLE / "prepare.py")
    assert spec is not None and spec.loader is not None
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    prepare.prepare(tmp_path / "generated")
    shutil.copy(EXAMPLE / "job.yml", tmp_path / "job.yml")
    env = {**os.environ, "AzureWebJobsStorage": connection_string,
           "BATCHFX_JOBS_CONTAINER": unique_name, "BATCHFX_QUEUE_NAME": unique_name,
           "BATCHFX_WORK_DIR": str(tmp_path / "work")}
    done = subprocess.run([sys.executable, "-m", "batchfx", "run", str(tmp_path / "job.yml"),
                           "--output", str(tmp_path / "out"), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "predictions.csv").read_text()
    assert rows == (tmp_path / "generated" / "expected.txt").read_text()
    assert rows.splitlines()[0].endswith(" flowers-000.parquet")


# --- an MLflow model over tabular inputs: file_name and row of every row ----------------------

FEATURES = ["x1", "x2", "x3"]


def _regression_model(folder: Path) -> Any:
    """An MLflow linear model: its predictions differ row by row, so they identify rows."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(200, 3)), columns=FEATURES)
    model = LinearRegression().fit(train, train @ [1.5, -2.0, 0.25] + 3.0)
    signature = infer_signature(train, model.predict(train))
    mlflow.sklearn.save_model(model, str(folder), signature=signature,
                              pip_requirements=["scikit-learn"])
    return model


def _measurements(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=FEATURES)
    frame.insert(0, "site", [f"s{(i // 700) % 3}" for i in range(rows)])  # runs, interleaved
    return frame


def _score_tabular(app: App, tmp_path: Path, rows: int,
                   **changes: Any) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """Score one Parquet file of ``rows`` rows with the built-in script; (inputs, output, model)."""
    model = _regression_model(tmp_path / "model")
    frame = _measurements(rows)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer,
                   row_group_size=25_000)
    container = app.settings.jobs_container
    app.storage.blobs.upload(container, "tabular/day=1/measurements.parquet", buffer.getvalue())
    spec: dict[str, Any] = {
        "name": "mlflow-tabular",
        "model": upload_folder(app.storage, tmp_path / "model", "model"),
        "inputs": {"path": f"{container}/tabular", "type": "tabular", "format": "parquet"},
        "output": f"{container}-out/results",
        "mini_batch_size": "10000 rows",
        "output_format": "csv",
        "append_row_file_name": "predictions.csv",
        "run_invocation_timeout": 120,
        **changes,
    }
    view = app.wait(app.submit(spec), timeout=240)
    assert view["state"] == "completed", view
    text = app.outputs(view)["predictions.csv"]
    return frame, pd.read_csv(io.StringIO(text)), model


def test_mlflow_model_over_a_large_parquet_file_names_each_rows_file_and_row(
        app: App, tmp_path: Path) -> None:
    rows = 1_000_000  # the "Done means": a million rows, no scoring script
    frame, out, model = _score_tabular(app, tmp_path, rows, mini_batch_size="40000 rows",
                                       process_count_per_node=2)
    assert list(out.columns) == ["row", "prediction", "file_name"]
    assert (out["file_name"] == "measurements.parquet").all()
    assert out["row"].tolist() == list(range(rows))  # row groups cut into row ranges
    np.testing.assert_allclose(out["prediction"], model.predict(frame[FEATURES]), rtol=1e-12)


def test_mlflow_rows_grouped_by_partition_keys_keep_their_row_in_the_file(
        app: App, tmp_path: Path) -> None:
    rows = 30_000
    frame, out, model = _score_tabular(app, tmp_path, rows, mini_batch_size="3000 rows",
                                       partition_keys=["site"])
    assert sorted(out["row"]) == list(range(rows))
    expected = model.predict(frame[FEATURES])[out["row"].to_numpy()]
    np.testing.assert_allclose(out["prediction"], expected, rtol=1e-12)
    assert not out["row"].is_monotonic_increasing  # each site's rows first: scattered runs
