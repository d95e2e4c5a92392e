"""The job spec: Azure ML names and defaults, v2 aliases, and one message per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from batchfx.errors import SpecError
from batchfx.sizes import MiniBatchSize
from batchfx.spec import InputSpec, JobSpec, load_job_spec, parse_job_spec, split_storage_path

BASE: dict[str, Any] = {
    "name": "digits-nightly",
    "entry_script": "score.py",
    "source_directory": "src",
    "inputs": "digits/images",
    "output": "results/digits",
}


def problems_of(data: object) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_job_spec(data)
    assert info.value.problems, "SpecError without problems"
    return info.value.problems


def the_problem_of(data: object) -> str:
    found = problems_of(data)
    assert len(found) == 1, found
    return found[0]


def the_problem(**changes: Any) -> str:
    return the_problem_of({**BASE, **changes})


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


LONG = "x" * 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "ab"),
        ("name", "a" * 33),
        ("name", "Digits"),
        ("name", "1digits"),
        ("name", "digits-"),
        ("name", "digits_nightly"),
        ("name", 42),
        ("entry_script", "/abs/score.py"),
        ("entry_script", "C:/code/score.py"),
        ("entry_script", "../score.py"),
        ("entry_script", "code\\score.py"),
        ("entry_script", "score.txt"),
        ("entry_script", ".py"),
        ("source_directory", ""),
        ("source_directory", 3),
        ("model", "  "),
        ("inputs", ""),
        ("inputs", 5),
        ("output", "https://acct.blob.core.windows.net/results/x"),
        ("output", "Results/x"),
        ("output", "results//x"),
        ("output", "results/../x"),
        ("output", "/results/x"),
        ("output", "re\\x"),
        ("mini_batch_size", "ten"),
        ("mini_batch_size", 0),
        ("mini_batch_size", True),
        ("mini_batch_size", 2.5),
        ("error_threshold", -2),
        ("error_threshold", "3"),
        ("error_threshold", 1.0),
        ("allowed_failed_count", -5),
        ("allowed_failed_percent", 101),
        ("allowed_failed_percent", -0.5),
        ("allowed_failed_percent", "50"),
        ("allowed_failed_percent", True),
        ("allowed_failed_percent", float("nan")),
        ("allowed_failed_percent", float("inf")),
        ("output_action", "append"),
        ("append_row_file_name", ""),
        ("append_row_file_name", "a/b.txt"),
        ("append_row_file_name", "a\\b.txt"),
        ("append_row_file_name", ".."),
        ("append_row_file_name", "a" * 256),
        ("output_format", "xml"),
        ("append_row_header", 1),
        ("append_row_header", "yes"),
        ("run_invocation_timeout", 0),
        ("run_invocation_timeout", "60"),
        ("run_max_try", 0),
        ("run_max_try", True),
        ("process_count_per_node", 0),
        ("node_count", -1),
        ("arguments", 5),
        ("arguments", "--unbalanced 'quote"),
        ("environment_variables", ["A=1"]),
        ("logging_level", "verbose"),
        ("logging_level", 10),
        ("allow_reuse", "no"),
        ("side_inputs", ["labels"]),
        ("output", LONG),
    ],
)
def test_bad_value_message_names_field_and_value(field: str, value: object) -> None:
    message = the_problem(**{field: value})
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    assert message.startswith(f"{field}: got {shown} — "), message
    assert "Input should be" not in message  # our wording, not pydantic's


@pytest.mark.parametrize(
    ("changes", "start", "fragment"),
    [
        ({"partition_keys": []}, "partition_keys: got []", "e.g. [store, day]"),
        ({"partition_keys": "day"}, "partition_keys: got 'day'", "a list of key names"),
        ({"partition_keys": ["a/b"]}, "partition_keys[0]: got 'a/b'", "without '/'"),
        ({"partition_keys": ["d", "d"]}, "partition_keys[1]: 'd' is given twice", "give it once"),
        (
            {"inputs": {"path": "d/x.csv", "type": "uri_file"}, "partition_keys": ["day"]},
            "partition_keys: got ['day']",
            "key=value folders",
        ),
        ({"inputs": {"path": "d", "type": "tabular"}}, "inputs.format: missing", "csv, parquet"),
        ({"inputs": {"path": "d", "format": "csv"}}, "inputs.format: got 'csv'", "type: tabular"),
        ({"inputs": {"path": "d", "type": "tabular", "format": "xls"}}, "inputs.format: got 'xls'",
         "csv, parquet or jsonl"),
        ({"mini_batch_size": "10 rows"}, "mini_batch_size: got '10 rows'", "tabular inputs only"),
        ({"inputs": {"path": "d", "type": "mltable"}}, "inputs.type: got 'mltable'", "uri_file"),
        ({"inputs": {"path": ""}}, "inputs.path: got ''", "non-empty"),
        ({"inputs": {"path": "d", "glob": 3}}, "inputs.glob: got 3", "fnmatch"),
        (
            {"inputs": {"path": "d/x.png", "type": "uri_file", "glob": "*.png"}},
            "inputs.glob: got '*.png'",
            "folder inputs (uri_folder, tabular) only",
        ),
        ({"arguments": ["--n", None]}, "arguments[1]: got None", "a string"),
        ({"arguments": ["--flag", True]}, "arguments[1]: got True", "a string"),
        ({"environment_variables": {"A": None}}, "environment_variables.A: got None", "string"),
        ({"environment_variables": {"1A": "x"}}, "environment_variables: got name '1A'", "'_'"),
        ({"side_inputs": {"labels": 3}}, "side_inputs.labels: got 3", "path"),
        ({"side_inputs": {"my-labels": "l/x"}}, "side_inputs: got name 'my-labels'", "letters"),
        ({"mini_batch_size": "ten"}, "mini_batch_size: got 'ten'", "(KB/MB/GB, 1024-based)"),
    ],
)
def test_specific_problems_are_explained(
    changes: dict[str, Any], start: str, fragment: str
) -> None:
    message = the_problem(**changes)
    assert message.startswith(start), message
    assert fragment in message


def test_long_values_are_shortened_in_messages() -> None:
    message = the_problem(output_format="y" * 500)
    assert "..." in message
    assert len(message) < 200


def test_several_problems_give_several_messages() -> None:
    found = problems_of({**BASE, "name": "X", "run_max_try": 0, "colour": "red", "node_count": "2"})
    assert [p.split(":")[0] for p in found] == ["name", "run_max_try", "node_count", "colour"]


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("outptu", "output"),
        ("mini_batch_sise", "mini_batch_size"),
        ("Name", "name"),
        ("instance_cont", "instance_count"),
    ],
)
def test_unknown_field_suggests_the_closest_name(key: str, suggestion: str) -> None:
    message = the_problem(**{key: 1})
    assert message.startswith(f"{key}: unknown field — did you mean {suggestion!r}? ")
    assert "allowed fields are: name, entry_script, source_directory" in message


def test_unknown_field_without_a_close_name_lists_the_allowed_ones() -> None:
    message = the_problem(colour="red")
    assert message.startswith("colour: unknown field — allowed fields are: name, entry_script")
    assert "did you mean" not in message


def test_unknown_key_in_inputs_suggests_the_closest() -> None:
    message = the_problem(inputs={"path": "d", "glop": "*.png"})
    assert message.startswith("inputs.glop: unknown field — did you mean 'glob'? ")
    assert "allowed keys of inputs are: path, type, format, glob" in message


def test_inputs_mapping_needs_a_path() -> None:
    message = the_problem(inputs={"type": "uri_folder"})
    assert message.startswith("inputs.path: missing — required")


@pytest.mark.parametrize("field", ["name", "entry_script", "source_directory", "inputs"])
def test_missing_required_field_is_named(field: str) -> None:
    data = {k: v for k, v in BASE.items() if k != field}
    message = the_problem_of(data)
    assert message.startswith(f"{field}: missing — required")
    assert "e.g." in message


def test_missing_name_gives_an_example() -> None:
    message = the_problem_of({k: v for k, v in BASE.items() if k != "name"})
    assert "e.g. digits-nightly" in message


def test_empty_spec_lists_every_missing_field() -> None:
    found = problems_of({})
    # entry_script and source_directory are checked once the fields parse (an MLflow model
    # may stand in for them), so an empty spec names the plain required fields.
    assert {p.split(":")[0] for p in found} == {"name", "inputs", "output"}


def test_entry_script_may_be_left_out_only_with_a_model() -> None:
    no_script = {k: v for k, v in BASE.items() if k not in ("entry_script", "source_directory")}
    assert "MLflow" in the_problem_of(no_script)
    spec = parse_job_spec({**no_script, "model": "models/iris"})
    assert spec.entry_script is None and spec.source_directory is None


@pytest.mark.parametrize("top", [None, [], "name: x", 3])
def test_top_level_must_be_a_mapping(top: object) -> None:
    (message,) = problems_of(top)
    assert message.startswith("job spec: got ")
    assert "expected a mapping" in message


def test_summary_only_needs_no_output() -> None:
    data = {k: v for k, v in BASE.items() if k != "output"}
    spec = parse_job_spec({**data, "output_action": "summary_only"})
    assert spec.output is None


@pytest.mark.parametrize("output", [{}, {"output": None}])
def test_append_row_needs_an_output(output: dict[str, Any]) -> None:
    data = {**{k: v for k, v in BASE.items() if k != "output"}, **output}
    message = the_problem_of(data)
    assert message.startswith("output: missing")
    assert "summary_only" in message


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


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("results", ("results", "")),
        ("results/", ("results", "")),
        ("results/digits", ("results", "digits")),
        ("results/digits/2024-01-01/", ("results", "digits/2024-01-01")),
        ("a-b-1/x y/z", ("a-b-1", "x y/z")),
    ],
)
def test_split_storage_path(path: str, expected: tuple[str, str]) -> None:
    assert split_storage_path("output", path) == expected


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("https://acct.blob.core.windows.net/c/p", "URLs are not accepted"),
        ("azureml://datastores/x/paths/y", "URLs are not accepted"),
        ("results\\digits", "backslashes"),
        ("/results/digits", "leading '/'"),
        ("", "segments"),
        ("results//digits", "segments"),
        ("results/../secrets", "'..'"),
        ("results/./x", "'.'"),
        ("ab/x", "not a valid Azure container name"),
        ("Results/x", "not a valid Azure container name"),
        ("re--sults/x", "not a valid Azure container name"),
        ("-results/x", "not a valid Azure container name"),
        ("results-/x", "not a valid Azure container name"),
        ("r" * 64, "not a valid Azure container name"),
    ],
)
def test_split_storage_path_refuses(path: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        split_storage_path("inputs.path", path)
    (message,) = info.value.problems
    assert message.startswith(f"inputs.path: got {path[:20]!r}"[:-1])
    assert fragment in message


YAML_SPEC = """\
name: digits-nightly
entry_script: score.py
source_directory: ./src
inputs:
  path: digits/images
  glob: "*.png"
output: results/digits
mini_batch_size: 64MB
retry_settings:
  max_retries: 2
"""


def test_load_yaml_spec(tmp_path: Path) -> None:
    file = tmp_path / "job.yml"
    file.write_text(YAML_SPEC)
    spec, folder = load_job_spec(file)
    assert (spec.name, spec.run_max_try, spec.inputs.glob) == ("digits-nightly", 2, "*.png")
    assert spec.mini_batch_limit == MiniBatchSize(bytes=64 * 1024**2)
    assert folder == tmp_path.resolve()


def test_load_json_spec_indented_with_tabs(tmp_path: Path) -> None:
    file = tmp_path / "job.json"
    file.write_text(json.dumps({**BASE, "instance_count": 2}, indent="\t"))
    spec, folder = load_job_spec(str(file))
    assert spec.node_count == 2
    assert folder == tmp_path.resolve()


def test_load_yaml_flow_mapping(tmp_path: Path) -> None:
    file = tmp_path / "job.yaml"
    file.write_text(
        "{name: digits-nightly, entry_script: score.py, source_directory: src,"
        " inputs: d, output: results/x}"
    )
    assert load_job_spec(file)[0].inputs.path == "d"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("name: digits-nightly\ninputs: [unclosed\n", 3, "invalid YAML"),
        ("name: a\n  bad: indentation\n", 2, "invalid YAML"),
        ("name: digits-nightly\nname: other\n", 2, "duplicate key 'name'"),
    ],
)
def test_broken_yaml_names_the_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    file = tmp_path / "broken.yml"
    file.write_text(text)
    with pytest.raises(SpecError) as info:
        load_job_spec(file)
    (message,) = info.value.problems
    assert message.startswith(f"{file}:{line}:"), message
    assert fragment in message


def test_missing_spec_file_is_named(tmp_path: Path) -> None:
    file = tmp_path / "nope.yml"
    with pytest.raises(
        SpecError, match=r"nope\.yml: cannot read the job spec \(No such file or directory\)"
    ):
        load_job_spec(file)


def test_empty_spec_file_is_not_a_mapping(tmp_path: Path) -> None:
    file = tmp_path / "empty.yml"
    file.write_text("")
    with pytest.raises(SpecError, match="job spec: got NoneType None — expected a mapping"):
        load_job_spec(file)


def test_invalid_spec_file_lists_field_problems(tmp_path: Path) -> None:
    file = tmp_path / "job.yml"
    file.write_text(YAML_SPEC + "colour: red\nnode_count: '3'\n")
    with pytest.raises(SpecError) as info:
        load_job_spec(file)
    assert [p.split(":")[0] for p in info.value.problems] == ["node_count", "colour"]


TABULAR = {"path": "data/sales", "type": "tabular", "format": "parquet"}


def test_tabular_inputs_default_to_one_mebibyte_mini_batches() -> None:
    spec = parse_job_spec({**BASE, "inputs": TABULAR})
    assert spec.mini_batch_limit == MiniBatchSize(bytes=1024**2)
    assert spec.to_record()["mini_batch_size"] == "1MB"
    assert JobSpec.from_record(spec.to_record()) == spec


@pytest.mark.parametrize(("value", "limit"), [
    (4096, MiniBatchSize(bytes=4096)),
    ("64KB", MiniBatchSize(bytes=64 * 1024)),
    ("10000 rows", MiniBatchSize(rows=10_000)),
])
def test_tabular_mini_batch_size_is_bytes_or_rows(value: object, limit: MiniBatchSize) -> None:
    spec = parse_job_spec({**BASE, "inputs": TABULAR, "mini_batch_size": value})
    assert spec.mini_batch_limit == limit


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_tabular_formats_and_a_glob_are_accepted(fmt: str) -> None:
    inputs = {**TABULAR, "format": fmt, "glob": f"*.{fmt}"}
    assert parse_job_spec({**BASE, "inputs": inputs}).inputs.format == fmt


@pytest.mark.parametrize("keys", [["store", "day"], '["store", "day"]', ("store", "day")])
def test_partition_keys_take_a_list_or_its_json_text(keys: object) -> None:
    spec = parse_job_spec({**BASE, "inputs": TABULAR, "partition_keys": keys})
    assert spec.partition_keys == ["store", "day"]
    assert JobSpec.from_record(spec.to_record()).partition_keys == ["store", "day"]


def test_partition_keys_on_a_folder_of_files_mean_key_value_folders() -> None:
    assert parse_job_spec({**BASE, "partition_keys": ["day"]}).partition_keys == ["day"]


def test_a_bad_tabular_size_and_a_missing_format_are_both_reported() -> None:
    problems = problems_of({**BASE, "inputs": {"path": "d", "type": "tabular"},
                            "mini_batch_size": "lots"})
    assert problems == ["inputs.format: missing — tabular inputs need format: csv, parquet or "
                        "jsonl"]  # the size is checked once the inputs are valid
    problem = the_problem(inputs=TABULAR, mini_batch_size="lots")
    assert problem.startswith("mini_batch_size: got 'lots' — expected a size in bytes")
