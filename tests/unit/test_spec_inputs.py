"""Several named inputs (ParallelRunStep's inputs=[...]): parsed, checked, named."""

from __future__ import annotations

from typing import Any

import pytest

from batchfx.core.errors import SpecError
from batchfx.core.packing import build_manifest_page, item_name, parse_manifest_line
from batchfx.core.spec import InputSpec, parse_job_spec
from batchfx.storage import BlobRef

SPEC: dict[str, Any] = {"name": "two-inputs", "entry_script": "score.py",
                        "source_directory": "code/src", "output": "results/out"}


def _problems(**changes: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_job_spec({**SPEC, **changes})
    return info.value.problems


def test_a_list_of_folders_is_several_inputs_named_in_order() -> None:
    spec = parse_job_spec({**SPEC, "inputs": ["data/a", {"path": "data/b", "name": "late"}]})
    assert [(i.path, i.name, i.type) for i in spec.input_list] == [
        ("data/a", "input_1", "uri_folder"), ("data/b", "late", "uri_folder")]
    assert spec.input.path == "data/a"
    assert (spec.input_field(0), spec.input_field(1)) == ("inputs[0]", "inputs[1]")
    again = parse_job_spec(spec.to_record())
    assert again.input_list == spec.input_list


def test_a_list_of_one_is_that_input_and_records_as_before() -> None:
    spec = parse_job_spec({**SPEC, "inputs": ["data/a"]})
    assert isinstance(spec.inputs, InputSpec)
    assert spec.input_field(0) == "inputs"
    assert spec.to_record()["inputs"] == {"path": "data/a", "type": "uri_folder",
                                          "format": None, "glob": None}


def test_several_tabular_inputs_share_the_tabular_default_size() -> None:
    spec = parse_job_spec({**SPEC, "inputs": [
        {"path": "t/a", "type": "tabular", "format": "csv"},
        {"path": "t/b", "type": "tabular", "format": "csv"}]})
    assert spec.mini_batch_size == "1MB"


def test_inputs_of_different_kinds_are_refused_naming_both() -> None:
    assert _problems(inputs=["data/a", {"path": "t/b", "type": "tabular",
                                        "format": "csv"}]) == [
        "inputs[1]: got tabular csv — every input of a job is of one kind (inputs[0] is "
        "files); run a job per kind"]


def test_a_name_given_twice_is_refused() -> None:
    assert _problems(inputs=[{"path": "a/x", "name": "day"}, {"path": "a/y", "name": "day"}]
                     ) == ["inputs: the name 'day' is given twice — name each input once"]


def test_each_input_problem_names_its_place_in_the_list() -> None:
    found = _problems(inputs=["data/a", {"path": "data/b", "glop": "*.png"}, 5,
                              {"path": "d", "name": "1bad"}])
    assert found[0].startswith("inputs[1].glop: unknown field — did you mean 'glob'?")
    assert found[1].startswith("inputs[2]: got 5 — expected a folder")
    assert found[2].startswith("inputs[3].name: got '1bad'")


def test_an_empty_list_and_per_input_file_with_several_inputs_are_refused() -> None:
    assert _problems(inputs=[])[0].startswith("inputs: got [] — expected at least one input")
    assert _problems(inputs=["a/x", "a/y"], output_action="per_input_file")[0].startswith(
        "output_action: got 'per_input_file' — its output files are named after the input")


def test_reports_name_an_item_of_several_inputs_after_its_input() -> None:
    page = build_manifest_page("data", "a/day1", [[BlobRef("a/day1/x/1.txt", 1, "e")]], 0,
                               input_name="late")
    line = parse_manifest_line(page.body[: page.entries[0].length])
    assert line.input_name == "late"
    assert item_name(line, "a/day1/x/1.txt") == "late/x/1.txt"
    alone = parse_manifest_line(build_manifest_page(
        "data", "a/day1", [[BlobRef("a/day1/x/1.txt", 1, "e")]], 0).body)
    assert item_name(alone, "a/day1/x/1.txt") == "x/1.txt"
