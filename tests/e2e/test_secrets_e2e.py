"""The storage account key never shows up in job records, outputs, API replies or logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from e2e_app import App

from batchfx.core.settings import Settings
from batchfx.local.azurite import ACCOUNT_KEY


def test_settings_repr_hides_the_connection_string(connection_string: str) -> None:
    assert ACCOUNT_KEY not in repr(Settings(connection_string=connection_string))


def test_key_is_absent_from_records_outputs_and_replies_of_a_failing_job(app: App) -> None:
    assert app.api is not None
    spec = app.spec("init_raises.py", {"a.txt": "1"}, run_max_try=1)
    view = app.wait(app.submit(spec))
    assert view["state"] == "failed"
    texts = [json.dumps(view), json.dumps(app.api.list())]
    texts += list(app.outputs(view).values())
    for table in (app.settings.jobs_table, app.settings.minibatches_table):
        texts += [json.dumps(row, default=str) for row in
                  app.storage.tables.query(table, "job" if table == app.settings.jobs_table
                                           else view["id"])]
    assert texts and all(ACCOUNT_KEY not in t and "AccountKey" not in t for t in texts)


def test_key_is_absent_from_the_cli_output_and_log(connection_string: str, unique_name: str,
                                                  tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text("def run(mb):\n    raise RuntimeError('no')\n")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("1")
    spec = tmp_path / "job.yml"
    spec.write_text(json.dumps({"name": "secret-job", "source_directory": "code",
                                "entry_script": "score.py", "inputs": "in",
                                "output": f"{unique_name}-out/x", "run_max_try": 1}))
    env = {**os.environ, "AzureWebJobsStorage": connection_string,
           "BATCHFX_JOBS_CONTAINER": unique_name, "BATCHFX_QUEUE_NAME": unique_name,
           "BATCHFX_WORK_DIR": str(tmp_path / "w")}
    done = subprocess.run([sys.executable, "-m", "batchfx", "--log-level", "DEBUG", "run",
                           str(spec), "--output", str(tmp_path / "o"), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0  # completed: no threshold set, the failed item is reported
    assert "1 failed" in " ".join(done.stderr.split())
    assert "RuntimeError" in (tmp_path / "o" / "errors.txt").read_text()
    assert ACCOUNT_KEY not in done.stdout + done.stderr
    logs = "".join(p.read_text() for p in (tmp_path / "o").rglob("*") if p.is_file())
    assert ACCOUNT_KEY not in logs
