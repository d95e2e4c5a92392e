"""Deployments: batchfx's format and Azure ML v2 batch deployment YAML, one message per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchfx.core.deployments import Deployment, load_document, normalise_settings, parse_deployment
from batchfx.core.errors import SpecError

# The Azure ML docs' MNIST batch deployment, without environment and compute (refused).
MNIST = """
$schema: https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json
name: mnist-torch-dpl
description: A deployment using Torch to solve the MNIST classification dataset.
endpoint_name: mnist-batch
type: model
model:
  name: mnist-classifier-torch
  path: model
code_configuration:
  code: code
  scoring_script: batch_driver.py
resources:
  instance_count: 2
settings:
  max_concurrency_per_instance: 2
  mini_batch_size: 10
  output_action: append_row
  output_file_name: predictions.csv
  retry_settings:
    max_retries: 3
    timeout: 30
  error_threshold: -1
  logging_level: info
"""

OWN: dict[str, Any] = {
    "name": "digits-scoring",
    "source_directory": "code",
    "entry_script": "score.py",
    "settings": {"mini_batch_size": 5},
}


def mnist(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MNIST)
    data.update(changes)
    return data


def problems_of(data: object) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_deployment(data)
    return info.value.problems


def the_problem_of(data: object) -> str:
    found = problems_of(data)
    assert len(found) == 1, found
    return found[0]


def test_azureml_mnist_deployment_maps_onto_job_settings() -> None:
    deployment = parse_deployment(mnist())
    assert (deployment.name, deployment.source_directory, deployment.entry_script) == (
        "mnist-torch-dpl", "code", "batch_driver.py")
    # The folder keeps the model's name, for Model.get_model_path("mnist-classifier-torch")
    assert isinstance(deployment.model, dict)
    assert (deployment.model["path"], deployment.model["name"], deployment.model["version"]
            ) == ("model", "mnist-classifier-torch", 1)
    assert deployment.endpoint_name == "mnist-batch"
    settings = deployment.settings
    assert settings["process_count_per_node"] == 2
    assert settings["node_count"] == 2
    assert settings["append_row_file_name"] == "predictions.csv"
    assert (settings["run_max_try"], settings["run_invocation_timeout"]) == (3, 30)
    assert settings["logging_level"] == "INFO"


def test_azureml_settings_at_the_top_level_are_read_as_older_yamls_give_them() -> None:
    data = mnist(mini_batch_size=4, output_file_name="out.txt")
    del data["settings"]
    settings = parse_deployment(data).settings
    assert (settings["mini_batch_size"], settings["append_row_file_name"]) == (4, "out.txt")


def test_a_setting_given_twice_with_different_values_is_refused() -> None:
    assert "mini_batch_size: given at the top level (4) and under settings (10)" in \
        the_problem_of(mnist(mini_batch_size=4))


def test_own_format_parses_with_defaults_filled() -> None:
    deployment = parse_deployment({**OWN, "model": "models/digits", "output": "results/digits"})
    assert (deployment.model, deployment.output) == ("models/digits", "results/digits")
    assert deployment.settings["mini_batch_size"] == 5
    assert deployment.settings["run_max_try"] == 3


def test_record_round_trips() -> None:
    deployment = parse_deployment(mnist(tags={"team": "vision"}))
    assert Deployment.from_record(deployment.to_record()) == deployment


@pytest.mark.parametrize(("key", "value", "message"), [
    ("properties", {"a": "b"}, "properties: not supported"),
    ("job_definition", {"a": "b"}, "job_definition: not supported"),
])
def test_unsupported_azureml_keys_are_refused_one_message_each(key: str, value: Any,
                                                               message: str) -> None:
    assert the_problem_of(mnist(**{key: value})).startswith(message)


def test_the_docs_yaml_with_environment_and_compute_is_accepted_and_both_kept() -> None:
    environment = {"image": "x", "conda_file": {"dependencies": ["pip", {"pip": ["torch"]}]}}
    deployment = parse_deployment(mnist(environment=environment, compute="azureml:cpu"))
    assert deployment.settings["environment"] == {"pip": ["torch"]}  # what gets built
    assert deployment.settings["compute_target"] == "azureml:cpu"


def test_a_registered_azure_ml_environment_is_refused_saying_what_to_give() -> None:
    assert "registered Azure ML environment" in the_problem_of(
        mnist(environment="azureml:sklearn-env:1"))


def test_an_unknown_azureml_key_names_the_allowed_ones() -> None:
    problem = the_problem_of(mnist(endpoint="x"))
    assert problem.startswith("endpoint: unknown field — did you mean 'endpoint_name'?")


def test_metadata_keys_are_accepted() -> None:
    deployment = parse_deployment(mnist(tags={"a": 1}))
    assert deployment.tags == {"a": "1"}


def test_a_registered_model_reference_is_kept_as_given() -> None:
    assert parse_deployment(mnist(model="azureml:mnist@latest")).model == "azureml:mnist@latest"
    assert parse_deployment(mnist(model={"path": "azureml:mnist:1"})).model == "azureml:mnist:1"


def test_a_model_mapping_with_name_and_version_names_a_registered_model() -> None:
    assert parse_deployment(mnist(model={"name": "mnist", "version": 3})).model == "mnist:3"


def test_a_model_mapping_without_path_or_version_is_refused() -> None:
    assert the_problem_of(mnist(model={"name": "mnist"})).startswith(
        "model.path: missing — give the model's folder")


def test_a_malformed_model_reference_is_refused() -> None:
    assert "a registered model is named name:version or name@latest" in the_problem_of(
        mnist(model="azureml:mnist@newest"))


def test_only_model_deployments_are_accepted() -> None:
    assert the_problem_of(mnist(type="pipeline")).startswith(
        "type: got 'pipeline' — only model deployments are supported")


def test_a_deployment_without_code_configuration_is_refused() -> None:
    data = mnist()
    del data["code_configuration"]
    assert "code_configuration: got None — batchfx needs a scoring script" in \
        problems_of(data)[0]


def test_a_bad_scoring_script_is_named_by_its_azureml_field() -> None:
    problem = the_problem_of(mnist(code_configuration={"code": "code",
                                                       "scoring_script": "/abs/x.py"}))
    assert problem.startswith("code_configuration.scoring_script: got '/abs/x.py'")


def test_a_bad_instance_count_is_named_by_its_azureml_field() -> None:
    assert the_problem_of(mnist(resources={"instance_count": 0})).startswith(
        "resources.instance_count: got 0")


def test_settings_errors_name_the_field_as_job_specs_do() -> None:
    problem = the_problem_of({**OWN, "settings": {"mini_batch_size": "ten"}})
    assert problem.startswith("mini_batch_size: got 'ten' — expected")


def test_a_v2_setting_error_names_both_names() -> None:
    problem = the_problem_of({**OWN, "settings": {"retry_settings": {"max_retries": 0}}})
    assert problem.startswith("run_max_try (given as retry_settings.max_retries): got 0")


def test_an_unknown_setting_is_named_under_settings() -> None:
    problem = the_problem_of({**OWN, "settings": {"mini_batch_sise": 5}})
    assert problem.startswith("settings.mini_batch_sise: unknown field — did you mean "
                              "'mini_batch_size'?")


@pytest.mark.parametrize("key", ["inputs", "name", "output"])
def test_invocation_fields_are_refused_in_settings(key: str) -> None:
    assert the_problem_of({**OWN, "settings": {key: "x"}}).startswith(f"settings.{key}: ")


def test_deployment_names_follow_the_job_name_rule() -> None:
    assert the_problem_of({**OWN, "name": "Digits"}).startswith(
        "name: got 'Digits' — expected 3 to 32 of a-z")


def test_own_format_refuses_an_unknown_field() -> None:
    assert the_problem_of({**OWN, "colour": "red"}).startswith("colour: unknown field")


def test_own_format_takes_environment_as_a_job_setting() -> None:
    assert parse_deployment({**OWN, "settings": {"environment": ["tabulate"]}}).settings[
        "environment"] == {"pip": ["tabulate"]}
    assert the_problem_of({**OWN, "environment": "x"}).startswith(
        "environment: unknown field")


def test_not_a_mapping_is_refused() -> None:
    assert the_problem_of(["x"]).startswith("deployment: got list")


def test_normalise_settings_gives_v1_names() -> None:
    assert normalise_settings({"output_file_name": "a.txt", "retry_settings": {"timeout": 5}}) \
        == {"append_row_file_name": "a.txt", "run_invocation_timeout": 5}


def test_load_document_reads_yaml(tmp_path: Path) -> None:
    file = tmp_path / "deployment.yml"
    file.write_text(MNIST)
    assert parse_deployment(load_document(file)).name == "mnist-torch-dpl"


def test_load_document_names_the_line_of_a_yaml_error(tmp_path: Path) -> None:
    file = tmp_path / "bad.yml"
    file.write_text("name: x\nsettings: [a\n")
    with pytest.raises(SpecError, match=r"bad\.yml:\d+:\d+: invalid YAML"):
        load_document(file)


# A version as the registry stored it before deployments were pydantic models.
STORED = (
    '{"name":"mnist-torch-dpl","description":"A deployment using Torch to solve the MNIST '
    'classification dataset.","tags":{},"endpoint_name":"mnist-batch","source_directory":'
    '"code","entry_script":"batch_driver.py","model":{"path":"m","name":"clf","version":1,'
    '"type":"custom_model","description":null,"tags":null},"output":null,"settings":'
    '{"models":[],"side_inputs":{},"mini_batch_size":10,"error_threshold":-1,'
    '"allowed_failed_count":-1,"allowed_failed_percent":100.0,"output_action":"append_row",'
    '"append_row_file_name":"predictions.csv","output_format":"text","append_row_header":'
    'false,"run_invocation_timeout":30,"run_max_try":3,"process_count_per_node":2,'
    '"node_count":2,"arguments":[],"environment_variables":{},"logging_level":"INFO",'
    '"allow_reuse":true,"join_input":false,"partition_keys":null,"partition_output":false,'
    '"description":null,"compute_target":null,"environment":null}}')


def test_a_stored_version_loads_and_is_stored_again_unchanged() -> None:
    deployment = Deployment.from_record(json.loads(STORED))
    assert json.dumps(deployment.to_record(), separators=(",", ":")) == STORED
    assert deployment == parse_deployment(mnist(model={"path": "m", "name": "clf"}))


def test_every_problem_of_both_parts_of_an_azureml_yaml_is_named_in_order() -> None:
    assert problems_of(mnist(type="pipeline", colour=1, name="Bad",
                             code_configuration={"code": "azureml:c:1", "cod": 1,
                                                 "scoring_script": "s.py"})) == [
        "type: got 'pipeline' — only model deployments are supported; publish a batchfx "
        "pipeline for anything else",
        "code_configuration.cod: unknown field — did you mean 'code'? allowed keys of "
        "code_configuration are: code, scoring_script",
        "code_configuration.code: 'azureml:c:1' is an Azure ML registry reference; give a "
        "folder path (a local folder, or container/prefix in the app's storage)",
        "colour: unknown field — allowed fields of an Azure ML batch deployment are: $schema, "
        "name, description, tags, endpoint_name, type, model, code_configuration, resources, "
        "settings, environment, compute",
        "name: got 'Bad' — expected 3 to 32 of a-z, 0-9 and '-', starting with a letter and "
        "not ending with '-', e.g. digits-scoring",
        "code_configuration.code: missing — required with entry_script: the folder holding "
        "the script, e.g. source_directory: ./src"]
