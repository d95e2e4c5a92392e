"""Deployments and published pipelines through the HTTP API, the CLI and the local runner."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from e2e_app import SCRIPTS, App, lines

from batchfx.cli.deployments import deployment, pipeline
from batchfx.services.jobs import get_job
from batchfx.services.upload import upload_folder

AZUREML_YAML = """
$schema: https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json
name: params-echo
endpoint_name: echo-batch
type: model
code_configuration:
  code: {code}
  scoring_script: score.py
resources:
  instance_count: 1
settings:
  max_concurrency_per_instance: 1
  mini_batch_size: 2
  output_action: append_row
  output_file_name: predictions.txt
  retry_settings:
    max_retries: 2
    timeout: 30
  logging_level: info
  environment_variables:
    GREETING: hello
"""


def call(app: App, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """One HTTP call with the function key; returns (status, JSON body)."""
    assert app.runner is not None
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{app.runner.url}/api/{path}", data=data, method=method)
    request.add_header("x-functions-key", app.runner.function_key)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def code_folder(app: App) -> Path:
    folder = app.tmp / "code"
    folder.mkdir(exist_ok=True)
    shutil.copy(SCRIPTS / "params_echo.py", folder / "score.py")
    return folder


def input_folder(app: App, count: int = 3) -> str:
    folder = app.tmp / "images"
    folder.mkdir(exist_ok=True)
    for index in range(count):
        (folder / f"{index}.txt").write_text(f"item {index}\n")
    return upload_folder(app.storage, folder, "inputs")


def register_azureml(app: App) -> tuple[int, dict[str, Any]]:
    code = upload_folder(app.storage, code_folder(app), "code")
    return call(app, "POST", "deployments", yaml.safe_load(AZUREML_YAML.format(code=code)))


def output_path(app: App) -> str:
    return f"{app.settings.jobs_container}-out/results"


def result_rows(app: App, job_id: str, file: str = "predictions.txt") -> list[str]:
    view = app.wait(job_id)
    assert view["state"] == "completed", view
    return lines(app.outputs(view)[file])


def test_an_azureml_yaml_registers_as_version_1(app: App) -> None:
    status, body = register_azureml(app)
    assert (status, body["name"], body["version"], body["registered"]) == (
        201, "params-echo", 1, True)
    assert body["endpoint_name"] == "echo-batch"
    assert body["settings"]["append_row_file_name"] == "predictions.txt"


def test_registering_unchanged_content_answers_200_with_the_same_version(app: App) -> None:
    register_azureml(app)
    status, body = register_azureml(app)
    assert (status, body["version"], body["registered"]) == (200, 1, False)


def test_invoking_a_deployment_passes_parameters_to_the_script(app: App) -> None:
    register_azureml(app)
    status, body = call(app, "POST", "deployments/params-echo/jobs", {
        "inputs": input_folder(app), "output": output_path(app), "parameters": {"top_k": 3}})
    assert status == 202
    assert body["status_url"].endswith(f"/api/jobs/{body['id']}")
    assert result_rows(app, body["id"]) == [
        f"{i}.txt argv=--top_k,3 env=BATCHFX_PARAM_TOP_K=3" for i in range(3)]


def test_an_unknown_deployment_is_a_404_naming_the_known_ones(app: App) -> None:
    register_azureml(app)
    status, body = call(app, "POST", "deployments/params-ech/jobs",
                        {"inputs": "x/y", "output": output_path(app)})
    assert status == 404
    assert "no deployment named 'params-ech'; registered deployments: params-echo" \
        in body["error"]


def test_a_deleted_deployment_is_gone_from_the_list(app: App) -> None:
    register_azureml(app)
    status, _ = call(app, "DELETE", "deployments/params-echo")
    assert status == 200
    assert call(app, "GET", "deployments") == (200, {"deployments": []})


def publish(app: App) -> dict[str, Any]:
    register_azureml(app)
    status, body = call(app, "POST", "pipelines", {
        "name": "nightly", "deployment": "params-echo",
        "parameters": {"folder": {"type": "string"},
                       "top_k": {"type": "integer", "default": 1}},
        "inputs": "${{parameters.folder}}", "output": output_path(app)})
    assert status == 201, body
    return body


def test_a_published_pipeline_runs_with_adf_parameter_assignments(app: App) -> None:
    publish(app)
    folder = input_folder(app, 2)
    status, body = call(app, "POST", "pipelines/nightly", {
        "ExperimentName": "adf-nightly",
        "ParameterAssignments": {"folder": folder, "top_k": "5"}})
    assert status == 202
    assert body["ExperimentName"] == "adf-nightly"
    assert result_rows(app, body["Id"]) == [
        f"{i}.txt argv=--folder,{folder},--top_k,5 "
        f"env=BATCHFX_PARAM_FOLDER={folder},BATCHFX_PARAM_TOP_K=5" for i in range(2)]
    assert get_job(app.storage, body["Id"]).submission.tags["experiment"] == "adf-nightly"


def test_an_unknown_parameter_assignment_is_a_400_naming_it(app: App) -> None:
    publish(app)
    status, body = call(app, "POST", "pipelines/nightly", {
        "ExperimentName": "x", "ParameterAssignments": {"folder": "a/b", "topk": "5"}})
    assert status == 400
    assert body["problems"] == ["parameter 'topk': unknown — did you mean 'top_k'? allowed "
                                "parameters are: folder, top_k"]


def test_a_mistyped_parameter_assignment_is_a_400_naming_it(app: App) -> None:
    publish(app)
    status, body = call(app, "POST", "pipelines/nightly", {
        "ParameterAssignments": {"folder": "a/b", "top_k": "abc"}})
    assert status == 400
    assert body["problems"][0].startswith("integer parameter 'top_k': got 'abc'")


def test_data_path_assignments_give_path_parameters_as_container_and_prefix(app: App) -> None:
    publish(app)
    container, prefix = input_folder(app, 2).split("/", 1)
    status, body = call(app, "POST", "pipelines/nightly", {
        "DataPathAssignments": {"folder": {"DataStoreName": container, "RelativePath": prefix}}})
    assert status == 202, body
    rows = result_rows(app, body["Id"])
    assert [r.split()[0] for r in rows] == ["0.txt", "1.txt"]
    assert f"--folder,{container}/{prefix}," in rows[0]


def test_a_malformed_data_path_assignment_is_a_400_naming_it(app: App) -> None:
    publish(app)
    status, body = call(app, "POST", "pipelines/nightly", {
        "DataPathAssignments": {"folder": {"RelativePath": "x"}}})
    assert status == 400
    assert body["problems"][0].startswith("DataPathAssignments.folder: got {'RelativePath': "
                                          "'x'} — expected {\"DataStoreName\": CONTAINER")


@pytest.mark.parametrize("field", ["DataSetDefinitionValueAssignments",
                                   "DatasetDefinitionValueAssignments"])
def test_dataset_assignments_in_either_spelling_say_what_to_do_instead(app: App,
                                                                       field: str) -> None:
    publish(app)
    status, body = call(app, "POST", "pipelines/nightly", {
        "ParameterAssignments": {"folder": "a/b"},
        field: {"input": {"DataSetReference": {"Name": "digits"}}}})
    assert status == 400
    assert body["problems"] == [
        f"{field}: registered datasets are not available in batchfx — declare a string "
        "parameter for the data's path and pass it in ParameterAssignments, e.g. "
        '{"input_path": "data/2024-05-01"}, or in DataPathAssignments as {"input_path": '
        '{"DataStoreName": "data", "RelativePath": "2024-05-01"}}']


def test_aml_parameters_set_the_step_settings_without_being_declared(app: App) -> None:
    publish(app)
    folder = input_folder(app, 3)
    status, body = call(app, "POST", "pipelines/nightly", {"ParameterAssignments": {
        "folder": folder, "aml_mini_batch_size": "1", "aml_node_count": "2",
        "aml_logging_level": "DEBUG"}})
    assert status == 202, body
    assert len(result_rows(app, body["Id"])) == 3
    spec = get_job(app.storage, body["Id"]).spec
    assert (spec["mini_batch_size"], spec["node_count"], spec["logging_level"]) == (1, 2,
                                                                                    "DEBUG")
    assert "aml_node_count" not in " ".join(spec["arguments"])  # not a script parameter


def test_an_unknown_pipeline_is_a_404(app: App) -> None:
    status, body = call(app, "POST", "pipelines/nightly", {"ParameterAssignments": {}})
    assert status == 404
    assert "no pipeline named 'nightly'" in body["error"]


def test_republishing_an_unchanged_pipeline_keeps_its_version(app: App) -> None:
    first = publish(app)
    status, again = call(app, "POST", "pipelines", {
        k: first[k] for k in ("name", "deployment", "parameters", "inputs", "output")})
    assert (status, again["version"]) == (200, first["version"])


def test_the_cli_uploads_a_local_code_folder_and_invokes_with_a_local_input(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    assert app.runner is not None
    monkeypatch.setenv("BATCHFX_JOBS_CONTAINER", app.settings.jobs_container)
    code_folder(app)
    file = app.tmp / "deployment.yml"
    file.write_text(AZUREML_YAML.format(code="code"))
    common = ["--url", app.runner.url, "--key", app.runner.function_key or "",
              "--connection-string", app.settings.connection_string or ""]
    created = CliRunner().invoke(deployment, ["create", str(file), *common],
                                 catch_exceptions=False)
    assert created.output.strip().splitlines()[-1] == "params-echo@1"
    input_folder(app, 2)
    invoked = CliRunner().invoke(deployment, [
        "invoke", "params-echo", "--input", str(app.tmp / "images"), "--output",
        output_path(app), "--param", "mode=fast", *common], catch_exceptions=False)
    assert result_rows(app, invoked.output.strip())[0] == (
        "0.txt argv=--mode,fast env=BATCHFX_PARAM_MODE=fast")


def test_the_cli_publishes_and_runs_a_pipeline_with_params(app: App) -> None:
    assert app.runner is not None
    register_azureml(app)
    file = app.tmp / "pipeline.yml"
    file.write_text(yaml.safe_dump({
        "name": "nightly", "deployment": "params-echo", "output": output_path(app),
        "parameters": {"folder": {"type": "string"}}, "inputs": "${{parameters.folder}}"}))
    common = ["--url", app.runner.url, "--key", app.runner.function_key or ""]
    published = CliRunner().invoke(pipeline, ["publish", str(file), *common],
                                   catch_exceptions=False)
    assert published.output.strip().splitlines()[-1] == "nightly@1"
    folder = input_folder(app, 1)
    ran = CliRunner().invoke(pipeline, ["run", "nightly", "--param", f"folder={folder}",
                                        "--experiment", "cli", *common], catch_exceptions=False)
    assert result_rows(app, ran.output.strip()) == [
        f"0.txt argv=--folder,{folder} env=BATCHFX_PARAM_FOLDER={folder}"]
