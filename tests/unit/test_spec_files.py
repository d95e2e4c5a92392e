"""Job spec files and storage paths: YAML/JSON documents, container/prefix, tabular inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spec_cases import BASE, TABULAR, problems_of, the_problem

from batchfx.core.errors import SpecError
from batchfx.core.sizes import MiniBatchSize
from batchfx.core.spec import JobSpec, load_job_spec, parse_job_spec, split_storage_path


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


def _alias_bomb(levels: int) -> str:
    """A few hundred bytes of YAML whose aliases expand to 9**levels values."""
    text = 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
    for i in range(1, levels + 1):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    return text


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    file = tmp_path / "job.yml"
    file.write_text(_alias_bomb(9))  # 9**10 values expanded: the app would stall on it
    with pytest.raises(SpecError) as info:
        load_job_spec(file)
    assert info.value.problems == [f"{file}: invalid YAML — its aliases expand to more than "
                                   "100,000 values; write the values out, or use fewer nested "
                                   "aliases"]


def test_yaml_aliases_of_ordinary_size_still_work(tmp_path: Path) -> None:
    file = tmp_path / "job.yml"
    file.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in BASE.items()
                            if k != "environment_variables")
                    + "environment_variables: &env {MODE: fast}\n"
                    + "side_inputs: {labels: &labels data/labels, again: *labels}\n")
    spec, _ = load_job_spec(file)
    assert spec.side_inputs == {"labels": "data/labels", "again": "data/labels"}
    assert spec.environment_variables == {"MODE": "fast"}


def test_json_nested_too_deeply_is_refused_not_crashing(tmp_path: Path) -> None:
    file = tmp_path / "job.json"
    file.write_text("{" + '"a": [' * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(SpecError, match="nested too deeply to read"):
        load_job_spec(file)
