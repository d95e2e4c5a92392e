"""The output options of a job spec: per_input_file, join_input, partition_output."""

from __future__ import annotations

from typing import Any

import pytest
from spec_cases import BASE, TABULAR, problems_of, the_problem

from batchfx.core.spec import JobSpec, parse_job_spec

KEYED: dict[str, Any] = {**BASE, "inputs": TABULAR, "partition_keys": ["store"]}


def the_problem_of_keyed(**changes: Any) -> str:
    found = problems_of({**KEYED, **changes})
    assert len(found) == 1, found
    return found[0]


def test_per_input_file_is_an_output_action() -> None:
    spec = parse_job_spec({**BASE, "output_action": "per_input_file"})
    assert spec.output_action == "per_input_file"
    assert JobSpec.from_record(spec.to_record()) == spec


def test_per_input_file_needs_an_output() -> None:
    data = {k: v for k, v in BASE.items() if k != "output"}
    (message,) = problems_of({**data, "output_action": "per_input_file"})
    assert message.startswith("output: missing — required when output_action is append_row")
    assert "per_input_file" in message


def test_join_input_is_accepted_for_tabular_inputs() -> None:
    spec = parse_job_spec({**BASE, "inputs": TABULAR, "join_input": True})
    assert spec.join_input is True
    assert JobSpec.from_record(spec.to_record()).join_input is True


def test_join_input_with_per_input_file_is_accepted() -> None:
    data = {**BASE, "inputs": TABULAR, "join_input": True, "output_action": "per_input_file"}
    assert parse_job_spec(data).output_action == "per_input_file"


@pytest.mark.parametrize("inputs", ["digits/images", {"path": "d/x.png", "type": "uri_file"}])
def test_join_input_is_refused_for_file_inputs(inputs: object) -> None:
    message = the_problem(inputs=inputs, join_input=True)
    assert message.startswith("join_input: got True — ")
    assert "tabular inputs (inputs.type: tabular) only" in message


def test_join_input_is_refused_with_summary_only() -> None:
    message = the_problem(inputs=TABULAR, join_input=True, output_action="summary_only")
    assert message.startswith("join_input: got True — summary_only writes no rows")


def test_partition_output_with_partition_keys_is_accepted() -> None:
    spec = parse_job_spec({**KEYED, "partition_output": True})
    assert (spec.partition_output, spec.partition_keys) == (True, ["store"])


def test_partition_output_on_keyed_file_inputs_is_accepted() -> None:
    spec = parse_job_spec({**BASE, "partition_keys": ["day"], "partition_output": True})
    assert spec.partition_output is True


def test_partition_output_without_partition_keys_is_refused() -> None:
    message = the_problem(partition_output=True)
    assert message.startswith("partition_output: got True — partitioning the output needs "
                              "partition_keys")
    assert "e.g. partition_keys: [store]" in message


@pytest.mark.parametrize("action", ["per_input_file", "summary_only"])
def test_partition_output_is_for_append_row_only(action: str) -> None:
    message = the_problem_of_keyed(partition_output=True, output_action=action)
    assert message.startswith("partition_output: got True — it splits the append_row file")
    assert f"output_action is {action}" in message


def test_several_output_option_problems_are_all_reported() -> None:
    found = problems_of({**BASE, "join_input": True, "partition_output": True,
                         "output_action": "summary_only"})
    assert [p.split(":")[0] for p in found] == ["join_input", "partition_output"]


def test_output_option_problems_come_with_other_problems() -> None:
    found = problems_of({**BASE, "join_input": True, "partition_output": "yes"})
    assert [p.split(":")[0] for p in found] == ["partition_output"]  # ill-typed first
    assert found[0].startswith("partition_output: got 'yes' — expected true or false")
