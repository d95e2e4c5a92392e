"""The spec's ``model`` and ``models`` fields: folders and registered models
(batchfx.core.spec.parse_job_spec, references checked by batchfx.core.models)."""

from __future__ import annotations

from typing import Any

import pytest

from batchfx.core.errors import SpecError
from batchfx.core.spec import parse_job_spec
from batchfx.core.spec_fields import SCRIPT_REQUIRED

SPEC: dict[str, Any] = {
    "name": "job-one",
    "entry_script": "score.py",
    "source_directory": "code/src",
    "inputs": "data/in",
    "output": "data/out",
}
NO_SCRIPT = {k: v for k, v in SPEC.items() if k not in ("entry_script", "source_directory")}


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_job_spec(data)
    return info.value.problems


def _the_problem(data: dict[str, Any]) -> str:
    problems = _problems(data)
    assert len(problems) == 1, problems
    return problems[0]


def test_no_model_by_default() -> None:
    spec = parse_job_spec(SPEC)
    assert (spec.model, spec.models, spec.model_entries) == (None, [], [])


def test_models_list_of_references_and_folders() -> None:
    spec = parse_job_spec({**SPEC, "models": ["a:1", "container/folder", "azureml:b@latest"]})
    assert spec.models == ["a:1", "container/folder", "azureml:b@latest"]
    assert spec.model is None
    assert spec.model_entries == [("models[0]", "a:1"), ("models[1]", "container/folder"),
                                  ("models[2]", "azureml:b@latest")]


def test_one_model() -> None:
    spec = parse_job_spec({**SPEC, "model": "azureml:clf:2"})
    assert spec.model_entries == [("model", "azureml:clf:2")]
    assert spec.models == []


def test_a_single_string_is_a_list_of_one() -> None:
    spec = parse_job_spec({**SPEC, "models": "models/clf"})
    assert spec.models == ["models/clf"]
    assert spec.model_entries == [("models[0]", "models/clf")]


def test_models_survive_the_record() -> None:
    spec = parse_job_spec({**SPEC, "models": ["a:1", "container/folder"]})
    again = parse_job_spec(spec.to_record())
    assert again.model_entries == spec.model_entries


def test_model_and_models_together_is_one_problem() -> None:
    problem = _the_problem({**SPEC, "model": "m/x", "models": ["a:1"]})
    assert problem.startswith("model and models: both given")
    assert "'m/x'" in problem and "'a:1'" in problem


def test_a_malformed_reference_names_its_entry() -> None:
    problem = _the_problem({**SPEC, "models": ["a@newest", "ok/folder"]})
    assert problem.startswith("models[0]: got 'a@newest'")
    assert "name:version or name@latest" in problem


def test_every_malformed_reference_is_reported() -> None:
    problems = _problems({**SPEC, "models": ["ok/folder", "b:0", "azureml:c"]})
    assert [p.split(":")[0] for p in problems] == ["models[1]", "models[2]"]
    assert "versions start at 1" in problems[0]


def test_a_malformed_model_names_the_field() -> None:
    problem = _the_problem({**SPEC, "model": "azureml://datastores/ws/paths/clf"})
    assert problem.startswith("model: got 'azureml://datastores/ws/paths/clf'")


def test_a_model_listed_twice() -> None:
    problem = _the_problem({**SPEC, "models": ["a:1", "folder", "a:1"]})
    assert problem.startswith("models: got ")
    assert "listed twice" in problem


@pytest.mark.parametrize("value", [["a:1", 3], [None], 7, ["  "]])
def test_models_must_be_strings_or_mappings(value: Any) -> None:
    problem = _the_problem({**SPEC, "models": value})
    assert problem.startswith("models: got ")
    assert "expected a list of folder paths, registered models or {path, name} mappings" in \
        problem


def test_a_model_mapping_names_a_folder_for_get_model_path() -> None:
    spec = parse_job_spec({**SPEC, "models": [{"path": "store/clf", "name": "digits-clf",
                                               "version": 2}, "azureml:labels:1"]})
    assert spec.model_entries == [("models[0]", "store/clf"), ("models[1]", "azureml:labels:1")]
    assert spec.model_names == {"models[0]": ("digits-clf", 2)}
    single = parse_job_spec({**SPEC, "model": {"path": "store/clf", "name": "clf"}})
    assert (single.model_entries, single.model_names) == ([("model", "store/clf")],
                                                          {"model": ("clf", 1)})


def test_a_model_mapping_with_an_unknown_key_or_a_registered_path_is_refused() -> None:
    assert "model.weights" in _the_problem({**SPEC, "model": {"path": "a/b", "weights": 1}})
    assert _the_problem({**SPEC, "model": {"path": "azureml:clf:1", "name": "x"}}).startswith(
        "model: a registered model (azureml:clf:1) has its own name and version")


def test_without_a_script_one_model_is_scored_by_batchfx() -> None:
    assert parse_job_spec({**NO_SCRIPT, "models": ["m/mlflow"]}).model_entries == [
        ("models[0]", "m/mlflow")]
    assert parse_job_spec({**NO_SCRIPT, "model": "m/mlflow"}).model_entries == [
        ("model", "m/mlflow")]


@pytest.mark.parametrize("changes", [{"models": ["m/one", "m/two"]}, {}, {"models": []}])
def test_without_a_script_exactly_one_model_is_needed(changes: dict[str, Any]) -> None:
    assert _the_problem({**NO_SCRIPT, **changes}) == SCRIPT_REQUIRED


def test_source_directory_without_entry_script_needs_the_script() -> None:
    data = {**NO_SCRIPT, "source_directory": "code/src", "models": ["m/mlflow"]}
    assert _the_problem(data) == SCRIPT_REQUIRED
