"""An MLflow model scored with no scoring script, through `batchfx run` (the example)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
