"""Azure ML scripts with no edit through the whole app: azureml.core's Model, Run and Key
Vault (batchfx's compatibility layer), registered models, and the v1/v2 model layouts."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from e2e_app import App, lines

from batchfx.core.errors import NotRegisteredError, SpecError


def _register(app: App, name: str, files: dict[str, str], folder: str = "model"
              ) -> dict[str, Any]:
    container = app.settings.jobs_container
    for relative, text in files.items():
        app.storage.blobs.upload(container, f"registered/{name}/{folder}/{relative}",
                                 text.encode())
    assert app.api is not None
    body = {"name": name, "description": "test",
            "path": f"{container}/registered/{name}/{folder}"}
    registered: dict[str, Any] = app.api.call("POST", "models", body)
    return registered


def test_v1_script_with_model_run_logging_and_key_vault_runs_unchanged(app: App) -> None:
    secrets = app.tmp / "secrets.json"
    secrets.write_text(json.dumps({"cog-key": "s3cret"}))
    app.stop()
    app.settings = dataclasses.replace(app.settings, secrets_file=str(secrets))
    app.start()
    first = _register(app, "digits-clf", {"weights.txt": "old"})
    second = _register(app, "digits-clf", {"weights.txt": "new"}, folder="model-v2")
    assert (first["version"], second["version"]) == (1, 2)
    container = app.settings.jobs_container
    app.storage.blobs.upload(container, "labels/names.txt", b"zero\none\n")
    spec = app.spec("v1_azureml_core.py", {f"{i}.txt": str(i) for i in range(5)},
                    model="azureml:digits-clf@latest",
                    side_inputs={"labels": f"{container}/labels"})
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed", view
    assert view["models"] == ["digits-clf:2"]
    rows = lines(app.outputs(view)["parallel_run_step.txt"])
    assert rows == [f"{i}.txt weights=new key_ok=True model=model-v2 datasets=['labels']"
                    for i in range(5)]
    metrics = view["metrics"]
    assert metrics["metrics"]["mini_batch_items"]["count"] == 3  # 5 items, 2 per mini-batch
    assert metrics["metrics"]["init_pid"]["count"] in (1, 2)  # one per worker process
    assert metrics["tags"] == {"model": "digits-clf"}
    assert metrics["parent"]["metrics"]["items_scored"]["count"] == 3
    stored = json.loads(app.outputs(view)["metrics.json"])
    assert sorted(stored["metrics"]["mini_batch_items"]) == [1, 2, 2]
    assert "s3cret" not in json.dumps(stored) and "s3cret" not in json.dumps(view)


def test_a_missing_secret_fails_init_naming_it_not_a_value(app: App) -> None:
    spec = app.spec("v1_azureml_core.py", {"a.txt": "1"}, model="azureml:digits-clf:1")
    _register(app, "digits-clf", {"weights.txt": "w"})
    view = app.wait(app.submit(spec))
    assert view["state"] == "failed"
    assert "get_secret('cog-key'): no such secret" in view["error"]
    assert "BATCHFX_SECRET_COG_KEY" in view["error"]


def test_v2_script_reads_the_model_folder_by_its_own_name(app: App) -> None:
    container = app.settings.jobs_container
    app.storage.blobs.upload(container, "plain/model/weights.txt", b"w2")
    spec = app.spec("v2_model_dir.py", {"a.txt": "1", "b.txt": "2"},
                    model=f"{container}/plain/model")
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed", view
    assert lines(app.outputs(view)["parallel_run_step.txt"]) == ["a.txt weights=w2",
                                                                 "b.txt weights=w2"]
    assert view["models"] == ["model:1"]


def test_two_models_each_by_name_under_one_model_dir(app: App) -> None:
    container = app.settings.jobs_container
    _register(app, "clf", {"weights.txt": "c"})
    app.storage.blobs.upload(container, "extra/labels", b"l")  # a model may be one file
    spec = app.spec("two_models.py", {"a.txt": "1"},
                    models=["clf:1", f"{container}/extra/labels"])
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed", view
    assert lines(app.outputs(view)["parallel_run_step.txt"]) == [
        "a.txt clf=c labels=l dir=clf,labels"]


def test_an_unknown_registered_model_is_refused_at_submit(app: App) -> None:
    spec = app.spec("v2_model_dir.py", {"a.txt": "1"}, model="azureml:nope:3")
    assert app.api is not None
    with pytest.raises(SpecError) as info:
        app.api.submit(spec)
    assert info.value.problems == [
        "model: no model named 'nope'; registered models: none yet — register one with "
        "`batchfx model create` (POST /api/models)"]


def test_an_unsupported_call_fails_naming_the_call_and_what_to_use(app: App) -> None:
    view = app.wait(app.submit(app.spec("unsupported_azureml.py", {"a.txt": "1"})))
    assert view["state"] == "failed"
    assert "azureml.core.Dataset.get_by_name is not available under batchfx" in view["error"]
    assert "side_inputs" in view["error"]


def test_preview_run_signature_receives_the_job_arguments(app: App) -> None:
    spec = app.spec("preview_arguments.py", {"a.txt": "1"}, arguments=["--top", "3"])
    view = app.wait(app.submit(spec))
    assert lines(app.outputs(view)["parallel_run_step.txt"]) == ["a.txt --top 3"]


V1_DEPLOYMENT = {
    "$schema": "https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json",
    "name": "digits-v1", "endpoint_name": "digits-batch", "type": "model",
    # Azure ML's environment: its conda file asks for nothing the app lacks (no build)
    "environment": {"conda_file": {"channels": ["conda-forge"], "dependencies": ["pip"]},
                    "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"},
    "compute": "azureml:cpu-cluster",
    "resources": {"instance_count": 1},
    "settings": {"mini_batch_size": 2, "output_file_name": "predictions.txt"},
}


def _secrets(app: App) -> None:
    secrets = app.tmp / "secrets.env"
    secrets.write_text("# local secrets\ncog-key=s3cret\n")
    app.stop()
    app.settings = dataclasses.replace(app.settings, secrets_file=str(secrets))
    app.start()


def test_the_v1_script_runs_unchanged_as_a_deployment_and_a_published_pipeline(
        app: App) -> None:
    _secrets(app)
    assert app.api is not None
    container = app.settings.jobs_container
    code = app.upload_script("v1_azureml_core.py", folder="v1code")
    app.storage.blobs.upload(container, "weights/model/weights.txt", b"w9")
    deployment = {**V1_DEPLOYMENT, "code_configuration": {"code": code,
                                                          "scoring_script": "score.py"},
                  # Azure ML's inline model: the folder, named for Model.get_model_path
                  "model": {"name": "digits-clf", "path": f"{container}/weights/model"}}
    registered = app.api.call("POST", "deployments", deployment)
    assert registered["version"] == 1
    inputs = app.upload_inputs({"a.txt": "1", "b.txt": "2", "c.txt": "3"})
    invoked = app.api.call("POST", "deployments/digits-v1/jobs", {
        "inputs": inputs, "output": f"{container}-out/dep"})
    view = app.wait(invoked["id"])
    assert view["state"] == "completed", view
    assert list(view["ignored_settings"]) == ["compute_target"]
    expected = [f"{n}.txt weights=w9 key_ok=True model=model datasets=[]" for n in "abc"]
    assert lines(app.outputs(view)["predictions.txt"]) == expected
    app.api.call("POST", "pipelines", {
        "name": "digits-nightly", "deployment": "digits-v1",
        "parameters": {"folder": {"type": "string"}},
        "inputs": "${{parameters.folder}}", "output": f"{container}-out/pipe"})
    run = app.api.call("POST", "pipelines/digits-nightly", {
        "ExperimentName": "nightly", "ParentRunId": "adf-run-7",
        "ParameterAssignments": {"folder": inputs}})
    view = app.wait(run["Id"])
    assert view["state"] == "completed", view
    assert lines(app.outputs(view)["predictions.txt"]) == expected
    assert view["models"] == ["digits-clf:1"]
    assert view["metrics"]["parent"]["metrics"]["items_scored"]["count"] == 2


def test_the_models_api_answers_400_for_a_bad_model_and_404_for_an_unknown_one(
        app: App) -> None:
    assert app.api is not None
    with pytest.raises(SpecError) as info:
        app.api.call("POST", "models", {"name": "clf", "path": "nowhere/x", "size": 3})
    assert info.value.problems == [
        "size: unknown field — allowed fields are: name, path, description"]
    with pytest.raises(SpecError) as info:
        app.api.call("POST", "models", {"name": "clf", "path": "nowhere/x"})
    assert info.value.problems[0].startswith("path: container 'nowhere' does not exist")
    registered = _register(app, "clf", {"weights.txt": "w"})
    assert app.api.call("GET", "models/clf?version=1")["path"] == registered["path"]
    assert [m["name"] for m in app.api.call("GET", "models")["models"]] == ["clf"]
    with pytest.raises(NotRegisteredError, match="no model named 'other'"):
        app.api.call("GET", "models/other")


def test_the_v2_script_runs_unchanged_as_a_deployment_and_a_published_pipeline(
        app: App) -> None:
    assert app.api is not None
    container = app.settings.jobs_container
    code = app.upload_script("v2_model_dir.py", folder="v2code")
    registered = _register(app, "heart-clf", {"weights.txt": "h1"})
    app.api.call("POST", "deployments", {
        **V1_DEPLOYMENT, "name": "heart-v2",
        "code_configuration": {"code": code, "scoring_script": "score.py"},
        "model": f"azureml:{registered['name']}@latest"})
    inputs = app.upload_inputs({"p1.txt": "1", "p2.txt": "2"})
    app.api.call("POST", "pipelines", {
        "name": "heart-nightly", "deployment": "heart-v2",
        "parameters": {"folder": {"type": "string"}},
        "inputs": "${{parameters.folder}}", "output": f"{container}-out/heart"})
    for job_id in (
            app.api.call("POST", "deployments/heart-v2/jobs", {
                "inputs": inputs, "output": f"{container}-out/dep2"})["id"],
            app.api.call("POST", "pipelines/heart-nightly", {
                "ParameterAssignments": {"folder": inputs}})["Id"]):
        view = app.wait(job_id)
        assert view["state"] == "completed", view
        assert view["models"] == ["heart-clf:1"]
        assert lines(app.outputs(view)["predictions.txt"]) == ["p1.txt weights=h1",
                                                               "p2.txt weights=h1"]


def test_the_script_process_holds_no_credential_and_gets_secrets_from_the_worker(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHFX_SECRET_COG_KEY", "s3cret")
    app.stop()
    app.start()  # its workers hold the storage connection string and the secret variable
    view = app.wait(app.submit(app.spec("env_probe.py", {"a.txt": "1"})))
    assert view["state"] == "completed", view
    assert lines(app.outputs(view)["parallel_run_step.txt"]) == [
        "a.txt storage=False secret_vars=False key_ok=True"]
