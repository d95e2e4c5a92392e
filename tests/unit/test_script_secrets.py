"""The script process's environment holds no credential; the worker answers get_secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchfx.core.script_contract import RunInfo
from batchfx.scoring.secrets import answer_secret, raise_secret_error, script_environment


def test_credentials_are_kept_out_of_the_script_environment() -> None:
    environ = {
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountKey=abc",
        "AzureWebJobsStorage__accountName": "acct",
        "APPSETTING_AzureWebJobsStorage": "key again",
        "IDENTITY_ENDPOINT": "http://localhost:8081/msi/token",
        "IDENTITY_HEADER": "token-secret",
        "MSI_SECRET": "s", "AZURE_CLIENT_SECRET": "s", "AZURE_STORAGE_CONNECTION_STRING": "s",
        "BATCHFX_SECRET_COG_KEY": "s3cret",
        "PATH": "/usr/bin", "HOME": "/home/me", "BATCHFX_WORK_DIR": "/tmp/w",
        "MY_SETTING": "kept", "AZURE_CLIENT_ID": "not a secret on its own",
    }
    assert script_environment(environ) == {
        "PATH": "/usr/bin", "HOME": "/home/me", "BATCHFX_WORK_DIR": "/tmp/w",
        "MY_SETTING": "kept", "AZURE_CLIENT_ID": "not a secret on its own"}


def test_the_worker_answers_with_the_value_or_the_error_to_raise(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"cog-key": "s3cret"}')
    info = RunInfo(secrets_file=str(secrets))
    assert answer_secret(info, "cog-key") == ("secret", "s3cret")
    kind, message = answer_secret(info, "other")[1:]
    assert kind == "KeyError" and "get_secret('other'): no such secret" in message
    assert answer_secret(RunInfo(secrets_file=str(tmp_path / "gone.json")), "x")[1] == "OSError"
    with pytest.raises(KeyError, match="no such secret"):
        raise_secret_error(kind, message)
    with pytest.raises(RuntimeError, match="odd"):
        raise_secret_error("SomethingElse", "odd")
