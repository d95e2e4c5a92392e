"""A script that imports a package batchfx does not depend on runs once its job names an
environment (a conda file's pip: section, installed from the package registry), through
`batchfx run`, a registered Azure ML deployment invoked over HTTP, and a blob drop; a
package that cannot be installed fails the job at once with pip's error."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from e2e_app import SCRIPTS, App, lines

from batchfx.core.deployments import load_document, parse_deployment
from batchfx.services.registry import register_deployment
from batchfx.services.upload import upload_folder

BATCHFX = [sys.executable, "-m", "batchfx"]
CONDA = {"name": "tabulate-env", "channels": ["conda-forge"],
         "dependencies": [f"python={sys.version_info.major}.{sys.version_info.minor}", "pip",
                          {"pip": ["tabulate==0.9.0"]}]}
FILES = {f"f{i}.txt": f"value-{i}" for i in range(4)}
EXPECTED = [f"f{i}.txt value-{i}" for i in range(4)]


def test_the_package_is_not_the_apps() -> None:
    # Else the tests below would pass without the environment.
    assert importlib.util.find_spec("tabulate") is None


def _folder(root: Path) -> Path:
    (root / "code").mkdir(parents=True)
    (root / "code" / "score.py").write_bytes((SCRIPTS / "uses_tabulate.py").read_bytes())
    (root / "inputs").mkdir()
    for name, text in FILES.items():
        (root / "inputs" / name).write_text(text)
    (root / "conda.yml").write_text(yaml.safe_dump(CONDA))
    return root


def test_batchfx_run_installs_the_conda_files_pip_section(
        connection_string: str, unique_name: str, tmp_path: Path) -> None:
    root = _folder(tmp_path / "job")
    (root / "job.yml").write_text(json.dumps({
        "name": "env-job", "source_directory": "code", "entry_script": "score.py",
        "inputs": "inputs", "output": "results/env", "mini_batch_size": 2,
        "environment": {"conda_file": "conda.yml"}}))
    env = {**os.environ, "AzureWebJobsStorage": connection_string,
           "BATCHFX_JOBS_CONTAINER": unique_name, "BATCHFX_QUEUE_NAME": unique_name,
           "BATCHFX_JOBS_TABLE": f"{unique_name}jobs",
           "BATCHFX_MINIBATCHES_TABLE": f"{unique_name}mb",
           "BATCHFX_WORK_DIR": str(tmp_path / "work")}
    out = tmp_path / "out"
    done = subprocess.run([*BATCHFX, "run", str(root / "job.yml"), "--output", str(out),
                           "--quiet"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert lines((out / "parallel_run_step.txt").read_text()) == EXPECTED


def _deployment(app: App, root: Path) -> str:
    """An Azure ML v2 batch deployment YAML naming the conda file next to it."""
    code = upload_folder(app.storage, root / "code", "code")
    (root / "deployment.yml").write_text(yaml.safe_dump({
        "$schema": "https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json",
        "name": "tabulate-dpl", "endpoint_name": "tabulate", "type": "model",
        "code_configuration": {"code": code, "scoring_script": "score.py"},
        "environment": {"conda_file": "conda.yml",
                        "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"},
        "settings": {"mini_batch_size": 2, "output_file_name": "predictions.txt"}}))
    register_deployment(app.storage, parse_deployment(load_document(root / "deployment.yml")))
    return "tabulate-dpl"


def _rows(app: App, job_id: str) -> list[str]:
    view = app.wait(job_id, timeout=600)
    assert view["state"] == "completed", view
    return lines(app.outputs(view)["predictions.txt"])


def test_a_deployment_with_a_conda_file_runs_when_invoked_and_from_a_blob_drop(
        app: App, tmp_path: Path) -> None:
    assert app.api is not None
    root = _folder(tmp_path / "dpl")
    name = _deployment(app, root)
    inputs = upload_folder(app.storage, root / "inputs", "inputs")
    invoked: dict[str, Any] = app.api.call("POST", f"deployments/{name}/jobs",
                                            {"inputs": inputs})
    assert _rows(app, invoked["id"]) == EXPECTED
    inbox = app.settings.inbox_container
    app.storage.blobs.ensure_container(inbox)
    for file, text in FILES.items():
        app.storage.blobs.upload(inbox, f"{name}/2026-12-06/{file}", text.encode())
    app.storage.blobs.upload(inbox, f"{name}/2026-12-06/_SUCCESS", b"")
    deadline = time.monotonic() + 120
    while len(jobs := app.api.list()) < 2:
        assert time.monotonic() < deadline, "the drop started no job"
        time.sleep(0.2)
    dropped = next(j for j in jobs if j["id"] != invoked["id"])
    assert _rows(app, dropped["id"]) == EXPECTED


def test_a_package_that_cannot_be_installed_fails_the_job_at_once_with_pips_error(
        app: App, tmp_path: Path) -> None:
    spec = app.spec("echo.py", {f"f{i}.txt": "x" for i in range(6)}, mini_batch_size=1,
                    environment={"pip": ["batchfx-no-such-package==0.0.1"]})
    view = app.wait(app.submit(spec), timeout=600)
    assert view["state"] == "failed", view
    assert "pip install failed" in view["error"]
    assert "batchfx-no-such-package" in view["error"]
    assert view["mini_batches"]["succeeded"] == 0
