"""A second storage account for job data (BATCHFX_DATA_CONNECTION_STRING), on one Azurite
serving two accounts: a job's code, inputs and outputs are read and written there, the
app's own state (manifests, rows, queues) stays in the app's account, and the app's account
holds no job data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from batchfx.local.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite

pytestmark = pytest.mark.azurite

DATA_ACCOUNT = "batchfxdata"
DATA_KEY = "ZGF0YWFjY291bnRrZXlkYXRhYWNjb3VudGtleWRhdGFhY2NvdW50a2V5ZGF0YQ=="
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def two_accounts() -> Iterator[Azurite]:
    """A private Azurite serving the development account and a data account."""
    saved = os.environ.get("AZURITE_ACCOUNTS")
    os.environ["AZURITE_ACCOUNTS"] = f"{ACCOUNT_NAME}:{ACCOUNT_KEY};{DATA_ACCOUNT}:{DATA_KEY}"
    try:
        with Azurite() as azurite:
            yield azurite
    finally:
        if saved is None:
            os.environ.pop("AZURITE_ACCOUNTS", None)
        else:
            os.environ["AZURITE_ACCOUNTS"] = saved


def _data_connection(azurite: Azurite) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={DATA_ACCOUNT};AccountKey={DATA_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{azurite.blob_port}/{DATA_ACCOUNT};")


def _run(azurite: Azurite, spec: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`batchfx run` on the app's account, with the data account beside it."""
    env = {**os.environ, "BATCHFX_DATA_CONNECTION_STRING": _data_connection(azurite),
           "BATCHFX_WORK_DIR": str(tmp_path / "work")}
    return subprocess.run(
        [sys.executable, "-m", "batchfx", "run", str(spec), "--output", str(tmp_path / "out"),
         "--quiet", "--connection-string", azurite.connection_string],
        env=env, capture_output=True, text=True, timeout=300)


def test_a_job_reads_and_writes_job_data_in_the_data_account_only(
        two_accounts: Azurite, tmp_path: Path) -> None:
    data = BlobServiceClient.from_connection_string(_data_connection(two_accounts))
    app = BlobServiceClient.from_connection_string(two_accounts.connection_string)
    container = data.create_container("data")
    container.upload_blob("code/score.py", (SCRIPTS / "echo.py").read_bytes())
    for i in range(7):
        container.upload_blob(f"inputs/item-{i}.txt", f"row {i}\n".encode())
    spec = tmp_path / "job.yml"
    spec.write_text("name: data-account\nentry_script: score.py\nsource_directory: data/code\n"
                    "inputs: data/inputs\noutput: data/results\nmini_batch_size: 3\n"
                    "allow_reuse: false\n")
    done = _run(two_accounts, spec, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines()
    assert len(rows) == 7 and all(f"item-{i}.txt" in rows[i] for i in range(7)), rows
    # The outputs are in the data account; the app's account has its state and no job data.
    written = {b.name.split("/", 2)[-1] for b in container.list_blobs("results/")}
    assert {"parallel_run_step.txt", "job_result.txt"} <= written, written
    in_app = {c.name for c in app.list_containers()}
    assert "data" not in in_app and "batchfx" in in_app, in_app
    state = [b.name for b in app.get_container_client("batchfx").list_blobs("jobs/")]
    assert any("manifest" in name for name in state), state
    assert {c.name for c in data.list_containers()} == {"data"}  # no app state there


def test_a_missing_data_container_is_named_with_the_account(two_accounts: Azurite,
                                                             tmp_path: Path) -> None:
    spec = tmp_path / "job.yml"
    spec.write_text("name: no-data\nentry_script: score.py\nsource_directory: nowhere/code\n"
                    "inputs: nowhere/inputs\noutput: nowhere/results\n")
    done = _run(two_accounts, spec, tmp_path)
    assert done.returncode == 2
    said = " ".join((done.stdout + done.stderr).split())
    assert ("inputs.path: container 'nowhere' does not exist in the data storage account "
            "(BATCHFX_DATA_CONNECTION_STRING)") in said, said
