"""The digits example: prepare.py's outputs and score.py as Azure ML would call it."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from sklearn.datasets import load_digits

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "digits"
COUNT = 40
ROW = re.compile(r"^(digit-\d{5}\.csv) ([0-9]) ([01]\.\d{4})$")


def load_by_path(path: Path, name: str) -> ModuleType:
    """Import a fresh module from a file, without touching sys.path or sys.modules."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def azureml_environment(model_dir: Path, arguments: Sequence[str]) -> Iterator[None]:
    """Set AZUREML_MODEL_DIR and sys.argv for the scoring script, restoring both after."""
    saved_env = os.environ.get("AZUREML_MODEL_DIR")
    saved_argv = sys.argv
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir.parent)  # holds model/, as in Azure ML
    sys.argv = ["score.py", *arguments]
    try:
        yield
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("AZUREML_MODEL_DIR", None)
        else:
            os.environ["AZUREML_MODEL_DIR"] = saved_env


def score(out_dir: Path, arguments: Sequence[str]) -> list[str]:
    """Call a fresh score.py's init() then run() over all inputs as one mini-batch."""
    script = load_by_path(EXAMPLE_DIR / "code" / "score.py", "digits_score_under_test")
    paths = sorted(str(p) for p in (out_dir / "inputs").iterdir())
    with azureml_environment(out_dir / "model", arguments):
        script.init()
        result = script.run(paths)
    assert isinstance(result, list)
    return result


def dataset_labels() -> dict[bytes, set[int]]:
    """Every image of sklearn's digits dataset, by its pixels, with its label(s)."""
    digits = load_digits()
    labels: dict[bytes, set[int]] = {}
    for image, label in zip(digits.data.astype(np.int64), digits.target, strict=True):
        labels.setdefault(image.tobytes(), set()).add(int(label))
    return labels


@pytest.fixture(scope="module")
def prepare_module() -> ModuleType:
    return load_by_path(EXAMPLE_DIR / "prepare.py", "digits_prepare_under_test")


@pytest.fixture(scope="module")
def prepared(prepare_module: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir: Path = prepare_module.prepare(tmp_path_factory.mktemp("digits"), COUNT)
    return out_dir


def test_prepare_writes_model_and_one_file_per_image(prepared: Path) -> None:
    assert (prepared / "model" / "model.joblib").is_file()
    names = sorted(p.name for p in (prepared / "inputs").iterdir())
    assert names == [f"digit-{i:05d}.csv" for i in range(COUNT)]
    for name in names:
        lines = (prepared / "inputs" / name).read_text().splitlines()
        assert len(lines) == 1
        assert len(lines[0].split(",")) == 64


def test_input_files_are_images_of_the_digits_dataset(prepared: Path) -> None:
    labels = dataset_labels()
    for path in (prepared / "inputs").iterdir():
        pixels = np.loadtxt(path, delimiter=",").astype(np.int64)
        assert pixels.tobytes() in labels, path.name


def test_run_predicts_the_dataset_label_for_most_files(prepared: Path) -> None:
    labels = dataset_labels()
    rows = score(prepared, ["--confidence", "0.0"])

    correct = 0
    for row in rows:
        match = ROW.match(row)
        assert match is not None, row
        name, digit = match.group(1), int(match.group(2))
        pixels = np.loadtxt(prepared / "inputs" / name, delimiter=",").astype(np.int64)
        correct += digit in labels[pixels.tobytes()]
    assert len(rows) == COUNT
    assert correct / COUNT > 0.9


def test_run_returns_one_row_per_file_with_name_digit_and_probability(prepared: Path) -> None:
    rows = score(prepared, [])

    matches = [ROW.match(row) for row in rows]
    assert all(matches), rows
    assert [m.group(1) for m in matches if m] == [f"digit-{i:05d}.csv" for i in range(COUNT)]
    assert all(0.0 <= float(m.group(3)) <= 1.0 for m in matches if m)


def test_expected_txt_holds_one_row_per_file_in_sorted_order(prepared: Path) -> None:
    lines = (prepared / "expected.txt").read_text().splitlines()

    assert len(lines) == COUNT
    names = [m.group(1) for m in map(ROW.match, lines) if m]
    assert names == sorted(p.name for p in (prepared / "inputs").iterdir())
    assert lines == score(prepared, ["--confidence", "0.0"])


def test_confidence_above_one_filters_every_file(prepared: Path) -> None:
    assert score(prepared, ["--confidence", "1.01"]) == []


def test_unknown_arguments_are_ignored_as_azure_ml_adds_its_own(prepared: Path) -> None:
    rows = score(prepared, ["--azureml_run_id", "abc", "--confidence", "0.0"])
    assert len(rows) == COUNT


def test_prepare_restores_argv_and_model_dir_after_scoring(
    prepare_module: ModuleType, tmp_path: Path
) -> None:
    argv_before = list(sys.argv)
    env_before = os.environ.get("AZUREML_MODEL_DIR")
    prepare_module.prepare(tmp_path, 2)
    assert sys.argv == argv_before
    assert os.environ.get("AZUREML_MODEL_DIR") == env_before


def test_prepare_again_with_fewer_files_removes_the_stale_inputs(
    prepare_module: ModuleType, tmp_path: Path
) -> None:
    prepare_module.prepare(tmp_path, 12)
    first = (tmp_path / "expected.txt").read_text()
    prepare_module.prepare(tmp_path, 5)

    assert len(list((tmp_path / "inputs").iterdir())) == 5
    assert (tmp_path / "expected.txt").read_text().splitlines() == first.splitlines()[:5]


def test_prepare_command_line_writes_count_files_to_out(
    prepare_module: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prepare_module.main(["--count", "3", "--out", str(tmp_path)])

    assert len(list((tmp_path / "inputs").iterdir())) == 3
    assert str(tmp_path / "expected.txt") in capsys.readouterr().out
