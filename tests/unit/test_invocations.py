"""Invocation targets and published-pipeline run requests: each problem named, as before they
were pydantic models (the messages below are the ones the hand-written checks gave)."""

from __future__ import annotations

from typing import Any

import pytest

from batchfx.core.errors import SpecError
from batchfx.services.invocations import job_spec_for, pipeline_run

VERSION = "expected a version number ≥ 1, or leave it out for the latest"
RUN_FIELDS = ("ExperimentName, ParameterAssignments, DataPathAssignments, "
              "DataSetDefinitionValueAssignments, Description, RunSource, ContinueOnStepFailure, "
              "ContinueRunOnStepFailure, ParentRunId")


def problems_of(target: dict[str, Any], assignments: dict[str, Any] | None = None) -> list[str]:
    # A refused target is refused before the registry is read: no storage needed.
    with pytest.raises(SpecError) as info:
        job_spec_for(None, target, assignments)  # type: ignore[arg-type]
    return info.value.problems


def test_a_deployment_target_names_every_problem_in_order() -> None:
    assert problems_of({"deployment": "digits", "version": "0", "colour": 1,
                        "parameters": {"a": 1, "A": 2}}, {"top_k": [1]}) == [
        "colour: unknown field of a deployment target — allowed: deployment, version, inputs, "
        "output, parameters, settings",
        f"version: got 0 — {VERSION}",
        "parameters: 'a' and 'A' give the same environment variable BATCHFX_PARAM_A; keep one",
        "parameters.top_k: got [1] — expected a string, number or boolean",
        "inputs: missing — give the folder to score, as container/prefix in the app's storage "
        "or {path, type, glob}"]


def test_settings_a_run_cannot_override_say_where_to_give_them() -> None:
    assert problems_of({"deployment": "digits", "inputs": "a/b",
                        "settings": {"inputs": "x", "model": "m"}}) == [
        "settings.inputs: cannot be overridden here; give it at the top level of the invocation",
        "settings.model: cannot be overridden here; give it in the deployment (register a new "
        "version)"]


def test_a_pipeline_target_names_every_problem_in_order() -> None:
    assert problems_of({"pipeline": "nightly", "inputs": "x", "version": "x",
                        "parameters": "y"}) == [
        "inputs: unknown field of a pipeline target — allowed: pipeline, version, parameters",
        f"version: got 'x' — {VERSION}",
        "parameters: got 'y' — expected a mapping such as {date: '2024-05-01'}"]


def test_a_run_request_gives_assignments_and_tags() -> None:
    assert pipeline_run({"ParameterAssignments": {"a": 1}, "ParentRunId": "r",
                         "DataPathAssignments": {"folder": {"DataStoreName": "data",
                                                            "RelativePath": "/2024/"}}},
                        "nightly") == (
        {"a": 1, "folder": "data/2024"},
        {"pipeline": "nightly", "experiment": "nightly", "parent_run_id": "r"})


def test_a_bad_run_request_names_every_problem_in_order() -> None:
    with pytest.raises(SpecError) as info:
        pipeline_run({"ExperimentName": "x" * 300, "Colour": 1,
                      "DataPathAssignments": {"folder": {"RelativePath": "x"}}}, "nightly")
    assert info.value.problems == [
        f"Colour: unknown field — allowed fields are: {RUN_FIELDS}",
        "DataPathAssignments.folder: got {'RelativePath': 'x'} — expected {\"DataStoreName\": "
        "CONTAINER, \"RelativePath\": PREFIX}, e.g. {\"input_path\": {\"DataStoreName\": "
        "\"data\", \"RelativePath\": \"2024-05-01\"}}",
        f"ExperimentName: got '{'x' * 59} — expected a string of at most 256 characters"]
