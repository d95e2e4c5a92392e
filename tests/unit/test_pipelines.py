"""Published pipelines: parameter declarations, assignment checks, typed substitution."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from batchfx.core.errors import SpecError
from batchfx.core.pipelines import (
    Parameter,
    Pipeline,
    parse_pipeline,
    placeholders,
    render,
    validate_assignments,
)

DECLARED = {
    "date": Parameter("date", "string"),
    "top_k": Parameter("top_k", "integer", 5, required=False),
    "threshold": Parameter("threshold", "number", 0.5, required=False),
    "verbose": Parameter("verbose", "boolean", False, required=False),
}

JOB: dict[str, Any] = {
    "source_directory": "code/v1",
    "entry_script": "score.py",
    "inputs": "data/${{parameters.date}}",
    "output": "results/${{parameters.date}}",
    "mini_batch_size": "${{parameters.top_k}}",
    "arguments": ["--threshold", "${{parameters.threshold}}"],
}


def problems_of(assignments: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        validate_assignments(DECLARED, assignments)
    return info.value.problems


@pytest.mark.parametrize(("given", "expected"), [
    ({"date": "2024-05-01"}, {"date": "2024-05-01", "top_k": 5, "threshold": 0.5,
                              "verbose": False}),
    ({"date": "d", "top_k": "7"}, {"top_k": 7}),
    ({"date": "d", "top_k": 7.0}, {"top_k": 7}),
    ({"date": "d", "threshold": "0.25"}, {"threshold": 0.25}),
    ({"date": "d", "threshold": 2}, {"threshold": 2}),
    ({"date": "d", "verbose": "True"}, {"verbose": True}),
    ({"date": "d", "verbose": "false"}, {"verbose": False}),
    ({"date": 20240501}, {"date": "20240501"}),
    ({"date": "d", "top_k": None}, {"top_k": 5}),
])
def test_assignments_are_typed_the_way_adf_sends_them(given: dict[str, Any],
                                                       expected: dict[str, Any]) -> None:
    values = validate_assignments(DECLARED, given)
    assert {k: values[k] for k in expected} == expected
    assert all(type(values[k]) is type(v) for k, v in expected.items())


@pytest.mark.parametrize(("given", "message"), [
    ({"date": "d", "top_k": "abc"}, "integer parameter 'top_k': got 'abc' — expected a whole "
                                    "number"),
    ({"date": "d", "top_k": "1.5"}, "integer parameter 'top_k': got '1.5'"),
    ({"date": "d", "top_k": True}, "integer parameter 'top_k': got True"),
    ({"date": "d", "threshold": "nan"}, "number parameter 'threshold': got 'nan'"),
    ({"date": "d", "verbose": "yes"}, "boolean parameter 'verbose': got 'yes' — expected true "
                                      "or false"),
    ({"date": ["a"]}, "string parameter 'date': got ['a']"),
    ({}, "string parameter 'date': missing — it has no default"),
    ({"date": "d", "topk": 3}, "parameter 'topk': unknown — did you mean 'top_k'? allowed "
                               "parameters are: date, top_k, threshold, verbose"),
])
def test_a_bad_assignment_is_one_message_naming_parameter_and_value(
        given: dict[str, Any], message: str) -> None:
    found = problems_of(given)
    assert len(found) == 1, found
    assert found[0].startswith(message)


def test_every_bad_assignment_is_reported_at_once() -> None:
    assert len(problems_of({"top_k": "x", "colour": "red"})) == 3


def test_a_lone_placeholder_takes_the_typed_value() -> None:
    assert render({"n": "${{parameters.top_k}}"}, {"top_k": 5}) == {"n": 5}


def test_placeholders_inside_text_are_replaced_by_text() -> None:
    assert render("data/${{ parameters.date }}/k${{parameters.top_k}}-${{parameters.on}}",
                  {"date": "2024-05-01", "top_k": 5, "on": True}) == "data/2024-05-01/k5-true"


def test_two_placeholders_are_text_even_when_they_fill_the_string() -> None:
    assert render("${{parameters.a}}${{parameters.b}}", {"a": 1, "b": 2}) == "12"


def test_render_reaches_lists_and_nested_mappings() -> None:
    rendered = render({"a": [{"b": "${{parameters.x}}"}]}, {"x": 0.5})
    assert rendered == {"a": [{"b": 0.5}]}


def test_render_refuses_an_undeclared_placeholder_naming_where_it_is() -> None:
    with pytest.raises(SpecError) as info:
        render({"inputs": "data/${{parameters.day}}"}, {"date": "x"})
    assert info.value.problems == ["inputs: '${{parameters.day}}' names no declared parameter "
                                   "— declared parameters are: date"]


def test_render_refuses_other_azureml_expressions() -> None:
    with pytest.raises(SpecError, match=re.escape("only ${{parameters.NAME}} placeholders")):
        render("${{inputs.data}}", {})


def test_placeholders_lists_parameter_names() -> None:
    assert placeholders(JOB) == {"date", "top_k", "threshold"}


def pipeline(**changes: Any) -> dict[str, Any]:
    return {"name": "nightly", "parameters": {"date": {"type": "string"},
                                              "top_k": {"type": "integer", "default": 5},
                                              "threshold": {"type": "number", "default": 0.5}},
            "job": JOB, **changes}


def test_a_job_pipeline_parses_and_round_trips() -> None:
    parsed = parse_pipeline(pipeline())
    assert parsed.parameters["top_k"] == Parameter("top_k", "integer", 5, required=False)
    assert parsed.parameters["date"].required
    assert Pipeline.from_record(parsed.to_record()) == parsed


def test_publishing_refuses_a_placeholder_of_an_undeclared_parameter() -> None:
    with pytest.raises(SpecError) as info:
        parse_pipeline(pipeline(job={**JOB, "output": "results/${{parameters.when}}"}))
    assert info.value.problems == ["job.output: '${{parameters.when}}' names no declared "
                                   "parameter — declared parameters are: date, top_k, threshold"]


def test_publishing_validates_the_job_template_with_the_defaults() -> None:
    with pytest.raises(SpecError) as info:
        parse_pipeline(pipeline(parameters={"date": {"type": "string"},
                                            "top_k": {"type": "integer", "default": 0},
                                            "threshold": {"type": "number", "default": 0.5}}))
    assert info.value.problems[0].startswith("job: mini_batch_size: got 0")


def test_a_parameter_without_default_does_not_fail_the_template_check() -> None:
    parsed = parse_pipeline(pipeline(job={**JOB, "name": "${{parameters.date}}"}))
    assert parsed.job is not None


def test_a_default_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        parse_pipeline(pipeline(parameters={"date": {"type": "integer", "default": "x"}}))
    assert info.value.problems[0].startswith("parameters.date.default: integer parameter "
                                             "'date': got 'x'")


def test_an_unknown_parameter_type_is_refused() -> None:
    with pytest.raises(SpecError, match=r"parameters\.date\.type: got 'date' — expected string"):
        parse_pipeline(pipeline(parameters={"date": {"type": "date"}}))


def test_a_deployment_pipeline_parses() -> None:
    parsed = parse_pipeline({"name": "nightly", "deployment": "digits",
                             "parameters": {"date": {"type": "string"}},
                             "inputs": "data/${{parameters.date}}",
                             "settings": {"mini_batch_size": 3}})
    assert (parsed.deployment, parsed.job, parsed.settings) == ("digits", None,
                                                                {"mini_batch_size": 3})


def test_job_and_deployment_together_are_refused() -> None:
    with pytest.raises(SpecError, match="job and deployment: give exactly one"):
        parse_pipeline(pipeline(deployment="digits", inputs="x/y"))


def test_a_deployment_pipeline_needs_inputs() -> None:
    with pytest.raises(SpecError, match="inputs: got None"):
        parse_pipeline({"name": "nightly", "deployment": "digits"})


# Versions as the registry stored them before pipelines were pydantic models.
STORED_JOB = (
    '{"name":"nightly","description":"d","tags":{},"parameters":{"date":{"type":"string"},'
    '"top_k":{"type":"integer","default":5},"threshold":{"type":"number","default":0.5}},'
    '"job":{"source_directory":"code/v1","entry_script":"score.py","inputs":'
    '"data/${{parameters.date}}","output":"results/${{parameters.date}}","mini_batch_size":'
    '"${{parameters.top_k}}","arguments":["--threshold","${{parameters.threshold}}"]}}')
STORED_DEPLOYMENT = (
    '{"name":"nightly","description":"d","tags":{},"parameters":{"date":{"type":"string"},'
    '"top_k":{"type":"integer","default":2}},"deployment":"digits","deployment_version":null,'
    '"inputs":"data/${{parameters.date}}","output":"res/out","settings":{"mini_batch_size":'
    '"${{parameters.top_k}}"}}')


@pytest.mark.parametrize("stored", [STORED_JOB, STORED_DEPLOYMENT])
def test_a_stored_version_loads_and_is_stored_again_unchanged(stored: str) -> None:
    pipeline = Pipeline.from_record(json.loads(stored))
    assert json.dumps(pipeline.to_record(), separators=(",", ":")) == stored


def test_a_declaration_with_an_unknown_key_still_declares_its_parameter() -> None:
    with pytest.raises(SpecError) as info:
        parse_pipeline(pipeline(parameters={**pipeline()["parameters"],
                                            "date": {"type": "string", "colour": 1}}))
    assert info.value.problems == ["parameters.date.colour: unknown field — allowed: type, "
                                   "default, description"]


def test_parameters_named_like_model_attributes_are_assigned() -> None:
    declared = {name: Parameter(name, "integer", 1, required=False)
                for name in ("json", "copy", "model_config", "schema")}
    assert validate_assignments(declared, {"json": "5", "model_config": 2}) == {
        "json": 5, "copy": 1, "model_config": 2, "schema": 1}
