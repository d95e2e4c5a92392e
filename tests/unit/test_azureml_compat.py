"""The ``azureml.core`` shim a scoring script imports where the real package is missing
(batchfx/scoring/compat/azureml/core), after aml_run.install put it on sys.path."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from batchfx.core.script_contract import RunInfo, ScriptConfig
from batchfx.scoring import aml_run

SHIM_MODULES = ("azureml", "azureml.core", "azureml.core.run", "azureml.core.model")


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "azureml-models" / "clf" / "2" / "clf"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.pkl").write_bytes(b"pickle")
    (folder / "sub" / "vocab.txt").write_text("a b")
    old = tmp_path / "azureml-models" / "clf" / "1" / "clf"
    old.mkdir(parents=True)
    single = tmp_path / "azureml-models" / "labels" / "1" / "labels.json"
    single.parent.mkdir(parents=True)
    single.write_text('{"0": "cat"}')
    return {"clf:2": folder, "clf:1": old, "labels:1": single}


def _install(tmp_path: Path, models: dict[str, Path], **info: Any) -> bool:
    entries = tuple((key.split(":")[0], int(key.split(":")[1]), str(path))
                    for key, path in models.items())
    info = {"job_id": "job-7", "experiment": "digits", **info}
    config = ScriptConfig(code_dir=".", entry_script="score.py", model_dir=None,
                          output_dir="out", log_path=str(tmp_path / "logs" / "w.log"),
                          models=entries, run_info=RunInfo(**info))
    return aml_run.install(config)


@pytest.fixture
def core(tmp_path: Path, models: dict[str, Path],
         monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``azureml.core`` as a script sees it; sys.path, sys.modules and the state restored."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(aml_run, "_state", None)
    monkeypatch.setenv("BATCHFX_SECRET_COG_KEY", "k-1")
    monkeypatch.setenv("BATCHFX_SECRET_DB_PASSWORD", "p-2")
    for name in SHIM_MODULES:
        sys.modules.pop(name, None)
    assert _install(tmp_path, models) is True
    import azureml.core

    try:
        assert azureml.core.__file__.startswith(aml_run.COMPAT_DIR)
        yield azureml.core
    finally:
        for name in SHIM_MODULES:
            sys.modules.pop(name, None)
        while aml_run.COMPAT_DIR in sys.path:
            sys.path.remove(aml_run.COMPAT_DIR)


def _metrics(tmp_path: Path) -> list[dict[str, Any]]:
    text = (tmp_path / "logs" / "w.metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_run_context_is_the_job(core: ModuleType) -> None:
    run = core.Run.get_context()
    assert run.id == "job-7"
    assert run.experiment.name == "digits"
    assert run.experiment.workspace.name == "batchfx"
    assert run.parent.id == "job-7"  # no pipeline run: the job is its own parent
    assert run.input_datasets == {}


def test_parent_and_side_inputs(core: ModuleType, tmp_path: Path,
                                models: dict[str, Path]) -> None:
    _install(tmp_path, models, parent_run_id="pipe-1",
             input_datasets=(("labels", "/side/labels"), ("vocab", "/side/v.txt")))
    run = core.Run.get_context()
    assert run.parent.id == "pipe-1"
    assert run.input_datasets == {"labels": "/side/labels", "vocab": "/side/v.txt"}


def test_secrets_through_the_workspace_and_the_run(core: ModuleType) -> None:
    run = core.Run.get_context()
    vault = run.experiment.workspace.get_default_keyvault()
    assert vault.get_secret("cog-key") == "k-1"
    assert vault.get_secrets(["cog-key", "db-password"]) == {"cog-key": "k-1",
                                                             "db-password": "p-2"}
    assert run.get_secret("db-password") == "p-2"
    assert run.get_secrets(["cog-key"]) == {"cog-key": "k-1"}
    with pytest.raises(KeyError, match="BATCHFX_SECRET_NONE"):
        run.get_secret("none")


def test_logging_is_written_to_the_metrics_file(core: ModuleType, tmp_path: Path) -> None:
    run = core.Run.get_context()
    run.log("accuracy", 0.5, description="top-1")
    run.log("accuracy", 0.75)
    run.log_list("losses", (0.3, 0.2))
    run.log_row("per-class", cls="cat", f1=0.9)
    run.log_table("table", {"x": [1, 2], "y": [3, 4]})
    run.tag("stage")
    run.set_tags({"owner": "me", "round": 2})
    run.parent.log("rows", 100)
    run.parent.tag("pipeline", "nightly")
    run.flush()
    run.complete()
    entries = [(e["run"], e["kind"], e["name"], e["value"]) for e in _metrics(tmp_path)]
    assert entries == [
        ("step", "log", "accuracy", 0.5),
        ("step", "log", "accuracy", 0.75),
        ("step", "list", "losses", [0.3, 0.2]),
        ("step", "row", "per-class", {"cls": "cat", "f1": 0.9}),
        ("step", "table", "table", {"x": [1, 2], "y": [3, 4]}),
        ("step", "tag", "stage", ""),
        ("step", "tag", "owner", "me"),
        ("step", "tag", "round", "2"),
        ("parent", "log", "rows", 100),
        ("parent", "tag", "pipeline", "nightly"),
    ]
    assert _metrics(tmp_path)[0]["description"] == "top-1"
    assert run.get_metrics() == {"accuracy": [0.5, 0.75], "losses": [0.3, 0.2],
                                 "per-class": {"cls": "cat", "f1": 0.9},
                                 "table": {"x": [1, 2], "y": [3, 4]}}
    assert run.get_metrics("accuracy") == {"accuracy": [0.5, 0.75]}
    assert run.get_metrics("nothing") == {}
    assert run.get_tags() == {"stage": "", "owner": "me", "round": "2"}
    assert run.parent.get_metrics() == {"rows": 100}
    assert run.parent.get_tags() == {"pipeline": "nightly"}
    assert core.Run.get_context().get_metrics("rows") == {}


def _refusal(call: Any, *names: str) -> str:
    with pytest.raises(aml_run.CompatError) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, NotImplementedError)
    for name in names:
        assert name in message, message
    assert " — " in message  # followed by what to use instead
    return message


def test_unsupported_run_calls(core: ModuleType) -> None:
    run = core.Run.get_context()
    assert "AZUREML_BI_OUTPUT_PATH" in _refusal(lambda: run.log_image("x", path="a.png"),
                                                "Run.log_image")
    assert "AZUREML_BI_OUTPUT_PATH" in _refusal(lambda: run.upload_file("x", "a.txt"),
                                                "Run.upload_file")
    _refusal(lambda: run.some_unknown_method, "Run.some_unknown_method")
    assert not hasattr(run, "__some_dunder__")


def test_unsupported_workspace_vault_and_model_calls(core: ModuleType) -> None:
    assert "Run.get_context().experiment.workspace" in _refusal(
        lambda: core.Workspace.from_config(), "Workspace.from_config")
    vault = core.Run.get_context().experiment.workspace.get_default_keyvault()
    _refusal(lambda: vault.set_secret("k", "v"), "Keyvault.set_secret")
    assert "batchfx model create" in _refusal(
        lambda: core.Model.register(None, "m.pkl", "clf"), "Model.register")
    _refusal(lambda: core.get_run("x"), "azureml.core.get_run", "Run.get_context()")


def test_unknown_names_import_but_refuse_use(core: ModuleType) -> None:
    from azureml.core import Dataset, Environment

    message = _refusal(lambda: Dataset.get_by_name(None, "digits"),
                       "azureml.core.Dataset.get_by_name", "side_inputs")
    assert "input_datasets" in message
    _refusal(lambda: Environment(name="env"), "azureml.core.Environment(...)", "environment")
    assert not hasattr(core, "__version__")


def test_submodules_import(core: ModuleType) -> None:
    from azureml.core.model import Model
    from azureml.core.run import Run

    assert Model is core.Model
    assert Run is core.Run


def test_get_model_path(core: ModuleType, models: dict[str, Path]) -> None:
    assert core.Model.get_model_path("clf") == str(models["clf:2"])
    assert core.Model.get_model_path("clf", version=1) == str(models["clf:1"])
    assert core.Model.get_model_path(model_name="labels") == str(models["labels:1"])
    with pytest.raises(FileNotFoundError, match="its models: clf:2, clf:1, labels:1"):
        core.Model.get_model_path("nope")


def test_model_object(core: ModuleType) -> None:
    model = core.Model(workspace=None, name="clf")
    assert (model.name, model.version, model.id) == ("clf", 2, "clf:2")
    older = core.Model(None, "clf", version=1)
    assert (older.version, older.id) == (1, "clf:1")
    by_id = core.Model(None, id="labels:1")
    assert (by_id.name, by_id.version) == ("labels", 1)
    with pytest.raises(ValueError, match="give the model's name"):
        core.Model(None)
    _refusal(lambda: model.serialize, "Model.serialize", "Model.download")


def test_download_a_folder_model(core: ModuleType, tmp_path: Path) -> None:
    target = tmp_path / "copy"
    path = core.Model(None, "clf").download(target_dir=str(target))
    assert path == str(target / "clf")
    assert (target / "clf" / "model.pkl").read_bytes() == b"pickle"
    assert (target / "clf" / "sub" / "vocab.txt").read_text() == "a b"
    with pytest.raises(FileExistsError, match="exist_ok=True"):
        core.Model(None, "clf").download(target_dir=str(target))
    assert core.Model(None, "clf").download(str(target), exist_ok=True) == path


def test_download_a_file_model(core: ModuleType, tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir"
    path = core.Model(None, "labels").download(target_dir=str(target))
    assert path == str(target / "labels.json")
    assert Path(path).read_text() == '{"0": "cat"}'
    with pytest.raises(FileExistsError):
        core.Model(None, "labels").download(target_dir=str(target))
