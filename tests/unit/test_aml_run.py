"""batchfx's azureml.core compatibility layer: the facts a script process keeps, model paths,
secrets and Run.log records (batchfx.scoring.aml_run)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batchfx.core.script_contract import RunInfo, ScriptConfig
from batchfx.scoring import aml_run
from batchfx.scoring.secrets import SECRET_ENV_PREFIX

MODELS = (("clf", 1, "/m/clf/1/clf"), ("clf", 3, "/m/clf/3/clf"),
          ("labels", 2, "/m/labels/2/labels.json"))


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without a job and leaves sys.path and the module's state as found."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(aml_run, "_state", None)
    for name in [k for k in os.environ if k.startswith(SECRET_ENV_PREFIX)]:
        monkeypatch.delenv(name)
    yield


def _install(tmp_path: Path | None = None, **info: Any) -> bool:
    log_path = str(tmp_path / "logs" / "worker-1.log") if tmp_path else None
    config = ScriptConfig(code_dir=".", entry_script="score.py", model_dir=None,
                          output_dir="out", models=MODELS, log_path=log_path,
                          run_info=RunInfo(job_id="job-1", **info))
    return aml_run.install(config)


def test_install_puts_the_shim_last_on_sys_path() -> None:
    assert aml_run._real_azureml_core() is False  # not installed in this environment
    assert aml_run.COMPAT_DIR not in sys.path
    assert _install() is True
    assert sys.path[-1] == aml_run.COMPAT_DIR
    _install(experiment="again")  # a second install refreshes the facts, adds no entry
    assert sys.path.count(aml_run.COMPAT_DIR) == 1
    assert aml_run.current().info.experiment == "again"
    assert aml_run.current().info.job_id == "job-1"
    assert aml_run.current().models == MODELS


def test_install_leaves_sys_path_alone_with_the_real_package(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aml_run, "_real_azureml_core", lambda: True)
    assert _install() is False
    assert aml_run.COMPAT_DIR not in sys.path
    assert aml_run.current().info.job_id == "job-1"  # the facts are kept all the same


def test_current_without_install_is_a_compat_error() -> None:
    with pytest.raises(aml_run.CompatError, match="there is no job here"):
        aml_run.current()
    assert issubclass(aml_run.CompatError, NotImplementedError)


def test_unsupported_names_the_call_and_the_alternative() -> None:
    with pytest.raises(aml_run.CompatError) as info:
        aml_run.unsupported("Run.frobnicate", "use Run.log")
    assert str(info.value).startswith("Run.frobnicate is not available under batchfx")
    assert str(info.value).endswith("— use Run.log")


def test_model_path_by_name_and_version() -> None:
    _install()
    assert aml_run.model_path("labels") == "/m/labels/2/labels.json"
    assert aml_run.model_path("clf", 1) == "/m/clf/1/clf"
    assert aml_run.model_path("clf", 3) == "/m/clf/3/clf"
    assert aml_run.model_path("clf") == "/m/clf/3/clf"  # the latest of the job's


def test_model_path_of_an_unknown_model_lists_the_jobs_models() -> None:
    _install()
    with pytest.raises(FileNotFoundError) as info:
        aml_run.model_path("digits")
    assert "'digits'" in str(info.value)
    assert "its models: clf:1, clf:3, labels:2" in str(info.value)
    with pytest.raises(FileNotFoundError, match=r"'clf:2'"):
        aml_run.model_path("clf", 2)


def test_model_path_version_must_be_an_int() -> None:
    _install()
    with pytest.raises(TypeError, match="version should be an int, got '3'"):
        aml_run.model_path("clf", "3")  # type: ignore[arg-type]


def test_secret_from_a_json_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"cog-key": "s3cr3t", "port": 8080}))
    _install(secrets_file=str(secrets))
    assert aml_run.get_secret("cog-key") == "s3cr3t"
    assert aml_run.get_secret("port") == "8080"


def test_secret_from_a_key_value_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("# local secrets\n\ncog-key = \"quoted value\"\nother='single'\n"
                       "#hidden=no\nplain=a=b\nnot a pair\n")
    _install(secrets_file=str(secrets))
    assert aml_run.get_secret("cog-key") == "quoted value"
    assert aml_run.get_secret("other") == "single"
    assert aml_run.get_secret("plain") == "a=b"
    with pytest.raises(KeyError):
        aml_run.get_secret("#hidden")


def test_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"in-file": "f"}')
    monkeypatch.setenv("BATCHFX_SECRET_COG_KEY", "from-env")
    _install(secrets_file=str(secrets))
    assert aml_run.get_secret("cog-key") == "from-env"
    assert aml_run.get_secret("Cog.Key") == "from-env"
    assert aml_run.get_secret("in-file") == "f"


def test_missing_secret_names_it_and_the_variable_not_values(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"other": "do-not-show-1"}')
    monkeypatch.setenv("BATCHFX_SECRET_OTHER", "do-not-show-2")
    _install(secrets_file=str(secrets))
    with pytest.raises(KeyError) as info:
        aml_run.get_secret("cog-key")
    message = info.value.args[0]
    assert "get_secret('cog-key')" in message
    assert "BATCHFX_SECRET_COG_KEY" in message
    assert str(secrets) in message
    assert "do-not-show" not in message


def test_missing_secret_without_a_file() -> None:
    _install()
    with pytest.raises(KeyError) as info:
        aml_run.get_secret("api")
    assert "BATCHFX_SECRET_API" in info.value.args[0]
    assert "secrets file" not in info.value.args[0]


def test_secret_name_is_required() -> None:
    _install()
    with pytest.raises(ValueError, match="give the secret's name"):
        aml_run.get_secret("")


def test_unreadable_secrets_file_is_an_os_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    _install(secrets_file=str(missing))
    with pytest.raises(OSError, match="cannot read the secrets file") as info:
        aml_run.get_secret("cog-key")
    assert str(missing) in str(info.value)


def test_invalid_json_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"cog-key": "s3cr3t",\n oops}')
    _install(secrets_file=str(secrets))
    with pytest.raises(ValueError, match="is not valid JSON") as info:
        aml_run.get_secret("cog-key")
    assert "line 2" in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_unreachable_key_vault_is_a_runtime_error() -> None:
    url = "https://127.0.0.1:9/"
    _install(key_vault_url=url)
    with pytest.raises(RuntimeError) as info:
        aml_run.get_secret("cog-key")
    assert url in str(info.value)
    assert "get_secret('cog-key')" in str(info.value)


def test_metrics_path_is_next_to_the_log() -> None:
    assert aml_run.metrics_path("/w/logs/worker-1.log") == "/w/logs/worker-1.metrics.jsonl"
    assert aml_run.metrics_path(None) == ""


def test_record_appends_json_lines(tmp_path: Path) -> None:
    _install(tmp_path)
    aml_run.record("step", "log", "accuracy", 0.9, description="top-1")
    aml_run.record("parent", "tag", "stage", "eval")
    path = Path(aml_run.metrics_path(str(tmp_path / "logs" / "worker-1.log")))
    assert path == tmp_path / "logs" / "worker-1.metrics.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["run"], e["kind"], e["name"], e["value"]) for e in lines] == [
        ("step", "log", "accuracy", 0.9), ("parent", "tag", "stage", "eval")]
    assert lines[0]["description"] == "top-1"
    assert "description" not in lines[1]
    assert lines[0]["pid"] == os.getpid()
    assert lines[0]["time"] <= lines[1]["time"]


def test_record_without_a_log_is_kept_in_memory_only(tmp_path: Path) -> None:
    _install()
    aml_run.record("step", "log", "n", 1)
    assert aml_run.logged("step", "metric") == {"n": 1}
    assert list(tmp_path.iterdir()) == []


def test_logged_values_per_run_and_group(tmp_path: Path) -> None:
    _install(tmp_path)
    aml_run.record("step", "log", "loss", 0.5)
    aml_run.record("step", "log", "loss", 0.25)
    aml_run.record("step", "list", "acc", [1, 2])
    aml_run.record("step", "tag", "stage", "a")
    aml_run.record("step", "tag", "stage", "b")
    aml_run.record("parent", "log", "rows", 10)
    assert aml_run.logged("step", "metric") == {"loss": [0.5, 0.25], "acc": [1, 2]}
    assert aml_run.logged("step", "tag") == {"stage": "b"}
    assert aml_run.logged("parent", "metric") == {"rows": 10}
    assert aml_run.logged("parent", "tag") == {}


def test_record_writes_odd_values_as_json(tmp_path: Path) -> None:
    _install(tmp_path)
    aml_run.record("step", "log", "bad", float("nan"))
    aml_run.record("step", "row", "r", {"x": np.int64(2), "y": [np.float32(0.5), math.inf]})
    text = (tmp_path / "logs" / "worker-1.metrics.jsonl").read_text()
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["value"] == "nan"
    assert second["value"] == {"x": 2, "y": [0.5, "inf"]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (None, None),
        (True, True),
        ("text", "text"),
        (7, 7),
        (2.5, 2.5),
        ((1, (2, 3)), [1, [2, 3]]),
        ({1: {"a": [None]}}, {"1": {"a": [None]}}),
        ({1, 2} - {1, 2}, "set()"),
    ],
)
def test_plain_values(value: Any, expected: Any) -> None:
    assert aml_run._plain(value) == expected


@pytest.mark.parametrize(
    ("value", "expected", "kind"),
    [
        (np.int64(3), 3, int),
        (np.float32(0.5), 0.5, float),
        (np.bool_(True), True, bool),
        (np.float32("nan"), "nan", str),
    ],
)
def test_plain_numpy_scalars_become_python_values(value: Any, expected: Any, kind: type) -> None:
    plain = aml_run._plain(value)
    assert plain == expected
    assert type(plain) is kind


def test_plain_numpy_float64_serializes_as_a_number() -> None:
    assert json.loads(json.dumps(aml_run._plain(np.float64(1.25)))) == 1.25
    assert aml_run._plain(np.float64("inf")) == "inf"
