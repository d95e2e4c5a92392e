"""The job spec: Azure ML names and defaults, v2 aliases, accepted values and records.

Refused values are in test_spec_problems, files and paths in test_spec_files, the output
options in test_spec_outputs.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from spec_cases import BASE, the_problem

from batchfx.core.errors import SpecError
from batchfx.core.sizes import MiniBatchSize
from batchfx.core.spec import InputSpec, JobSpec, parse_job_spec


@pytest.mark.parametrize(
    ("field", "default"),
    [
        ("model", None),
        ("side_inputs", {}),
        ("mini_batch_size", 10),
        ("error_threshold", -1),
        ("allowed_failed_count", -1),
        ("allowed_failed_percent", 100.0),
        ("output_action", "append_row"),
        ("append_row_file_name", "parallel_run_step.txt"),
        ("output_format", "text"),
        ("append_row_header", False),
        ("run_invocation_timeout", 60),
        ("run_max_try", 3),
        ("process_count_per_node", 1),
        ("node_count", 1),
        ("arguments", []),
        ("environment_variables", {}),
        ("logging_level", "INFO"),
        ("allow_reuse", True),
        ("join_input", False),
        ("partition_output", False),
    ],
)
def test_defaults_are_azure_mls(field: str, default: object) -> None:
    assert getattr(parse_job_spec(BASE), field) == default


def test_default_mini_batch_is_ten_files() -> None:
    assert parse_job_spec(BASE).mini_batch_limit == MiniBatchSize(count=10)


def test_mini_batch_size_with_a_unit_is_bytes() -> None:
    spec = parse_job_spec({**BASE, "mini_batch_size": "64MB"})
    assert spec.mini_batch_limit == MiniBatchSize(bytes=64 * 1024**2)
    assert spec.mini_batch_size == "64MB"


def test_inputs_string_is_a_uri_folder() -> None:
    spec = parse_job_spec(BASE)
    assert spec.inputs == InputSpec(path="digits/images", type="uri_folder")
    assert spec.inputs.glob is None


def test_inputs_mapping_says_more() -> None:
    inputs = {"path": "digits/images", "type": "uri_folder", "glob": "*.png"}
    spec = parse_job_spec({**BASE, "inputs": inputs})
    assert spec.inputs == InputSpec(path="digits/images", type="uri_folder", glob="*.png")


def test_inputs_uri_file() -> None:
    spec = parse_job_spec({**BASE, "inputs": {"path": "digits/one.png", "type": "uri_file"}})
    assert spec.inputs.type == "uri_file"


@pytest.mark.parametrize(
    ("v2_name", "value", "v1_name"),
    [
        ("output_file_name", "scores.txt", "append_row_file_name"),
        ("max_concurrency_per_instance", 4, "process_count_per_node"),
        ("instance_count", 3, "node_count"),
    ],
)
def test_v2_names_are_aliases(v2_name: str, value: object, v1_name: str) -> None:
    spec = parse_job_spec({**BASE, v2_name: value})
    assert getattr(spec, v1_name) == value
    assert v2_name not in spec.to_record()


@pytest.mark.parametrize(
    ("retry_settings", "timeout", "max_try"),
    [
        ({"max_retries": 5, "timeout": 30}, 30, 5),
        ({"max_retries": 1}, 60, 1),
        ({"timeout": 600}, 600, 3),
        ({}, 60, 3),
    ],
)
def test_v2_retry_settings_map_to_v1_fields(
    retry_settings: dict[str, int], timeout: int, max_try: int
) -> None:
    spec = parse_job_spec({**BASE, "retry_settings": retry_settings})
    assert (spec.run_invocation_timeout, spec.run_max_try) == (timeout, max_try)


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"node_count": 2, "instance_count": 3}, ("node_count", "instance_count")),
        (
            {"append_row_file_name": "a.txt", "output_file_name": "b.txt"},
            ("append_row_file_name", "output_file_name"),
        ),
        ({"run_max_try": 2, "retry_settings": {"max_retries": 4}}, ("run_max_try", "max_retries")),
        (
            {"run_invocation_timeout": 5, "retry_settings": {"timeout": 9}},
            ("run_invocation_timeout", "retry_settings.timeout"),
        ),
        ({"node_count": 1, "instance_count": True}, ("node_count", "instance_count")),
    ],
)
def test_v1_and_v2_forms_with_different_values_are_refused(
    changes: dict[str, Any], names: tuple[str, str]
) -> None:
    message = the_problem(**changes)
    assert all(name in message for name in names)
    assert "both given" in message


def test_v1_and_v2_forms_with_the_same_value_are_accepted() -> None:
    spec = parse_job_spec({**BASE, "node_count": 2, "instance_count": 2})
    assert spec.node_count == 2


def test_unknown_retry_setting_is_refused_with_a_suggestion() -> None:
    message = the_problem(retry_settings={"timout": 5})
    assert message.startswith("retry_settings.timout: unknown field")
    assert "did you mean 'timeout'?" in message


def test_retry_settings_must_be_a_mapping() -> None:
    message = the_problem(retry_settings=3)
    assert message.startswith("retry_settings: got 3")


def test_v2_value_errors_name_the_v1_field_and_the_v2_name() -> None:
    message = the_problem(retry_settings={"max_retries": 0})
    assert message.startswith("run_max_try (given as retry_settings.max_retries): got 0")


def test_arguments_string_is_split_like_a_shell() -> None:
    spec = parse_job_spec({**BASE, "arguments": "--model 'my model' --batch 32"})
    assert spec.arguments == ["--model", "my model", "--batch", "32"]


def test_argument_numbers_become_strings() -> None:
    assert parse_job_spec({**BASE, "arguments": ["--batch", 32, 0.5]}).arguments == [
        "--batch",
        "32",
        "0.5",
    ]


def test_environment_values_are_converted_to_strings() -> None:
    env = {"A": "x", "B": 3, "C": 1.5, "D": True, "E": ""}
    spec = parse_job_spec({**BASE, "environment_variables": env})
    assert spec.environment_variables == {"A": "x", "B": "3", "C": "1.5", "D": "True", "E": ""}


@pytest.mark.parametrize("level", ["debug", "Warning", "CRITICAL"])
def test_logging_level_is_case_insensitive(level: str) -> None:
    assert parse_job_spec({**BASE, "logging_level": level}).logging_level == level.upper()


def test_allowed_failed_percent_accepts_an_integer() -> None:
    assert parse_job_spec({**BASE, "allowed_failed_percent": 5}).allowed_failed_percent == 5.0


def test_side_inputs_are_kept() -> None:
    spec = parse_job_spec({**BASE, "side_inputs": {"labels": "digits/labels.csv"}})
    assert spec.side_inputs == {"labels": "digits/labels.csv"}


def test_partition_keys_null_is_the_default_and_accepted() -> None:
    assert parse_job_spec({**BASE, "partition_keys": None}).name == "digits-nightly"


def test_model_accepts_v2_names_when_validated_directly() -> None:
    data = {**BASE, "instance_count": 2, "retry_settings": {"timeout": 5}}
    spec = JobSpec.model_validate(data)
    assert (spec.node_count, spec.run_invocation_timeout) == (2, 5)
    assert spec == parse_job_spec(data)


def test_model_refuses_append_row_without_output_when_validated_directly() -> None:
    with pytest.raises(pydantic.ValidationError, match="output: missing"):
        JobSpec.model_validate({k: v for k, v in BASE.items() if k != "output"})


def test_allow_reuse_defaults_to_true_and_false_is_accepted() -> None:
    assert parse_job_spec(BASE).allow_reuse is True
    assert parse_job_spec({**BASE, "allow_reuse": False}).allow_reuse is False


def test_spec_is_frozen() -> None:
    spec = parse_job_spec(BASE)
    with pytest.raises(pydantic.ValidationError):
        spec.name = "other"


FULL: dict[str, Any] = {
    **BASE,
    "model": "models/digits",
    "inputs": {"path": "digits/images", "glob": "*.png"},
    "side_inputs": {"labels": "digits/labels.csv"},
    "mini_batch_size": "1MB",
    "error_threshold": 5,
    "allowed_failed_count": 2,
    "allowed_failed_percent": 12.5,
    "output_file_name": "scores.csv",
    "output_format": "csv",
    "append_row_header": True,
    "retry_settings": {"max_retries": 4, "timeout": 30},
    "max_concurrency_per_instance": 2,
    "instance_count": 3,
    "arguments": "--threshold 0.5",
    "environment_variables": {"SEED": 7},
    "logging_level": "debug",
}


@pytest.mark.parametrize("data", [BASE, FULL], ids=["defaults", "everything"])
def test_record_round_trips(data: dict[str, Any]) -> None:
    spec = parse_job_spec(data)
    record = spec.to_record()
    assert json.loads(json.dumps(record)) == record
    assert JobSpec.from_record(record) == spec


def test_record_uses_v1_names_with_defaults_filled() -> None:
    record = parse_job_spec(FULL).to_record()
    assert set(record) == set(JobSpec.model_fields)
    assert record["append_row_file_name"] == "scores.csv"
    assert (record["run_max_try"], record["run_invocation_timeout"]) == (4, 30)
    assert record["inputs"] == {
        "path": "digits/images",
        "type": "uri_folder",
        "format": None,
        "glob": "*.png",
    }


def test_from_record_refuses_a_bad_record() -> None:
    with pytest.raises(SpecError, match="run_max_try: got 0"):
        JobSpec.from_record({**parse_job_spec(BASE).to_record(), "run_max_try": 0})


def test_description_and_compute_target_are_accepted_as_in_a_parallel_run_config() -> None:
    spec = parse_job_spec({**BASE, "description": "nightly churn scoring",
                           "compute_target": "cpu-cluster"})
    assert spec.description == "nightly churn scoring"
    assert set(spec.ignored_settings) == {"compute_target"}
    assert "placement is the Functions platform's" in spec.ignored_settings["compute_target"]
    assert parse_job_spec(BASE).ignored_settings == {}


def test_an_environment_of_another_type_is_refused() -> None:
    assert the_problem(environment=3).startswith("environment: got 3")


def test_a_description_too_long_is_refused_naming_the_limit() -> None:
    assert "at most 2,000 characters" in the_problem(description="x" * 2001)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"append_row_file_name": "."}, "append_row_file_name: got '.'"),
    ({"append_row_file_name": "..."}, "append_row_file_name: got '...'"),
    ({"append_row_file_name": "a\nb"}, "control characters"),
    ({"append_row_file_name": "logs"}, "the folder of the workers' logs"),
    ({"output": "results/a\x00b"}, "control characters (such as NUL"),
    ({"output": "results/" + "x" * 1100}, "over the 1,024 a blob name may have"),
])
def test_names_that_would_break_finalize_are_refused(changes: dict[str, object],
                                                     expected: str) -> None:
    assert expected in the_problem(**changes)


def test_a_local_path_with_a_nul_is_refused() -> None:
    from batchfx.core.spec_io import split_source_path

    with pytest.raises(SpecError, match="control characters"):
        split_source_path("inputs.path", "/data/a\x00b")
