"""Refused job specs: one message per problem, naming the field, the value and the fix."""

from __future__ import annotations

from typing import Any

import pytest
from spec_cases import BASE, problems_of, the_problem, the_problem_of

from batchfx.core.spec import parse_job_spec

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
        ("output_action", "per_file"),
        ("join_input", "yes"),
        ("partition_output", 1),
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
