"""Scoring an MLflow model without a scoring script, as Azure ML's no-code deployment does."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

from batchfx.scoring.mlflow import (
    FILE_NAME_COLUMN,
    OUTPUT_COLUMNS,
    ROW_COLUMN,
    SCORE_SCRIPT,
    find_mlmodel,
    find_mlmodel_in,
    is_mlflow_model,
)

TRAIN = pd.DataFrame({"age": [20, 30, 40, 50, 60, 70], "bmi": [21.0, 23.5, 22.0, 27.5, 30.0, 26.5]})
LABELS = [0, 0, 0, 1, 1, 1]  # old is 1: the rows below are far from the boundary
_copies = itertools.count()


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AZUREML_MODEL_DIR holding an MLflow sklearn model in a subfolder, as Azure ML has it."""
    root = tmp_path_factory.mktemp("registered")
    classifier = LogisticRegression().fit(TRAIN, LABELS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "integer columns cannot be missing"
        signature = infer_signature(TRAIN, classifier.predict(TRAIN))  # age: long, bmi: double
    # Explicit requirements: inferring them would load the model in a subprocess (seconds).
    mlflow.sklearn.save_model(
        classifier, str(root / "model"), signature=signature, pip_requirements=["scikit-learn"]
    )
    return root


@pytest.fixture
def score(model_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A fresh copy of the built-in scoring script, init() already called."""
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_root))
    module = load_script()
    module.init()
    yield module


def load_script() -> ModuleType:
    """Import score.py by path, as the scoring host does: each copy has its own model."""
    name = f"mlflow_score_under_test_{next(_copies)}"
    spec = importlib.util.spec_from_file_location(name, SCORE_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as the host does: dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write_csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_csv_files_give_row_prediction_and_file_name(score: ModuleType, tmp_path: Path) -> None:
    young = write_csv(tmp_path / "young.csv", "age,bmi\n22,21.5\n25,22.0\n")
    old = write_csv(tmp_path / "old.csv", "age,bmi\n68,29.0\n")

    result = score.run([young, old])

    assert list(result.columns) == list(OUTPUT_COLUMNS)
    assert result.values.tolist() == [[0, 0, "young.csv"], [1, 0, "young.csv"], [0, 1, "old.csv"]]


def test_parquet_file_is_scored(score: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "batch.parquet"
    pd.DataFrame({"age": [21, 69], "bmi": [22.0, 28.0]}).to_parquet(path)

    result = score.run([str(path)])

    assert result.values.tolist() == [[0, 0, "batch.parquet"], [1, 1, "batch.parquet"]]


def test_values_are_cast_to_signature_types(score: ModuleType, tmp_path: Path) -> None:
    # MLflow alone refuses both: str for long, and int64 for double.
    path = tmp_path / "text.parquet"
    pd.DataFrame({"age": ["21", "69"], "bmi": [22, 28]}).to_parquet(path)
    csv = write_csv(tmp_path / "ints.csv", 'age,bmi\n"21",22\n69,28\n')

    result = score.run([str(path), csv])

    assert result["prediction"].tolist() == [0, 1, 0, 1]


def test_dataframe_mini_batch_takes_file_name_and_row_columns(score: ModuleType) -> None:
    mini_batch = pd.DataFrame(
        {
            "age": [21, 69, 23],
            "bmi": [22.0, 28.0, 21.0],
            FILE_NAME_COLUMN: ["a.parquet", "a.parquet", "b.parquet"],
            ROW_COLUMN: [7, 8, 0],
        }
    )

    result = score.run(mini_batch)

    assert result.values.tolist() == [[7, 0, "a.parquet"], [8, 1, "a.parquet"], [0, 0, "b.parquet"]]


def test_dataframe_without_helper_columns_counts_rows_from_zero(score: ModuleType) -> None:
    mini_batch = pd.DataFrame({"age": [69, 21], "bmi": [28.0, 22.0]}, index=[40, 41])

    result = score.run(mini_batch)

    assert result.values.tolist() == [[0, 1, ""], [1, 0, ""]]


def test_extra_columns_are_ignored(score: ModuleType, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ids.csv", "patient,age,bmi\np-1,69,28.0\n")

    assert score.run([path]).values.tolist() == [[0, 1, "ids.csv"]]


def test_missing_column_names_the_column_and_the_file(score: ModuleType, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "no-bmi.csv", "age,weight\n30,80\n")

    with pytest.raises(score.InputSchemaError) as caught:
        score.run([path])

    message = str(caught.value)
    assert "'no-bmi.csv'" in message
    assert "missing columns: 'bmi'" in message
    assert "extra columns (ignored): 'weight'" in message


def test_mistyped_value_names_the_column_row_and_file(score: ModuleType, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", "age,bmi\n30,22.0\nforty,23.0\n")

    with pytest.raises(score.InputSchemaError) as caught:
        score.run([path])

    assert "'bad.csv'" in str(caught.value)
    assert "'age' should be long: 'forty' in row 1 is not a number" in str(caught.value)


def test_fractional_value_for_an_integer_column_is_refused(score: ModuleType) -> None:
    frame = pd.DataFrame(
        {"age": [30.5], "bmi": [22.0], FILE_NAME_COLUMN: ["x.csv"], ROW_COLUMN: [4]}
    )

    with pytest.raises(
        score.InputSchemaError, match=r"30.5 in row 4 of 'x.csv' is not a whole number"
    ):
        score.run(frame)


def test_unsupported_file_type_is_refused(score: ModuleType, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.avro", "")

    with pytest.raises(score.InputFileError, match=r"'data.avro'.*'.avro' is not supported"):
        score.run([path])


def test_empty_file_gives_no_rows(score: ModuleType, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "empty.csv", "age,bmi\n")

    result = score.run([path])

    assert len(result) == 0
    assert list(result.columns) == list(OUTPUT_COLUMNS)


def test_folder_without_mlmodel_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.joblib").write_bytes(b"")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    script = load_script()

    with pytest.raises(script.MLflowModelError, match=r"no MLflow model in .*MLmodel"):
        script.init()


def test_unreadable_mlmodel_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "MLmodel").write_text("")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    script = load_script()

    with pytest.raises(script.MLflowModelError, match="not a readable MLmodel file"):
        script.init()


def test_model_without_pyfunc_flavor_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "MLmodel").write_text("flavors:\n  custom_flavor: {}\n")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    script = load_script()

    with pytest.raises(script.MLflowModelError, match=r"no python_function flavor.*custom_flavor"):
        script.init()


def test_missing_model_package_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: batchfx_no_such_flavor\n"
    )
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    script = load_script()

    with pytest.raises(script.MLflowModelError, match="needs the package 'batchfx_no_such_flavor'"):
        script.init()


def test_missing_mlflow_names_the_extra(model_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` sees when absent
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_root))
    script = load_script()

    with pytest.raises(script.MLflowModelError, match=r"pip install 'batchfx\[mlflow\]'"):
        script.init()


def test_run_before_init_is_a_clear_error() -> None:
    script = load_script()

    with pytest.raises(script.MLflowModelError, match="before init"):
        script.run([])


def test_named_outputs_become_columns() -> None:
    script = load_script()
    predictions = pd.DataFrame({"label": ["a", "b"], "score": [0.9, 0.7]})

    out = script.prediction_columns(predictions, 2, "input file 'x.csv'")

    assert out.values.tolist() == [["a", 0.9], ["b", 0.7]]


def test_two_dimensional_predictions_stay_one_value_per_row() -> None:
    script = load_script()

    out = script.prediction_columns(np.array([[0.1, 0.9], [0.8, 0.2]]), 2, "input file 'x.csv'")

    assert out["prediction"].tolist() == [[0.1, 0.9], [0.8, 0.2]]


def test_wrong_number_of_predictions_is_an_error() -> None:
    script = load_script()

    with pytest.raises(script.PredictionError, match="1 predictions for 2 rows of input file"):
        script.prediction_columns([1], 2, "input file 'x.csv'")


def test_mlmodel_is_found_at_the_top_or_in_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "MLmodel").write_text("")
    (tmp_path / "nested" / "model").mkdir(parents=True)
    (tmp_path / "nested" / "model" / "MLmodel").write_text("")

    assert find_mlmodel(tmp_path / "top") == tmp_path / "top" / "MLmodel"
    assert find_mlmodel(tmp_path / "nested") == tmp_path / "nested" / "model" / "MLmodel"
    assert is_mlflow_model(tmp_path / "nested")


def test_shallowest_mlmodel_wins_and_ties_are_refused(tmp_path: Path) -> None:
    (tmp_path / "artifacts" / "inner").mkdir(parents=True)
    (tmp_path / "MLmodel").write_text("")
    (tmp_path / "artifacts" / "inner" / "MLmodel").write_text("")
    (tmp_path / "twins" / "a").mkdir(parents=True)
    (tmp_path / "twins" / "b").mkdir()
    (tmp_path / "twins" / "a" / "MLmodel").write_text("")
    (tmp_path / "twins" / "b" / "MLmodel").write_text("")

    assert find_mlmodel(tmp_path) == tmp_path / "MLmodel"
    with pytest.raises(ValueError, match="several MLflow models"):
        find_mlmodel(tmp_path / "twins")
    assert is_mlflow_model(tmp_path / "twins")


def test_folder_without_mlmodel_is_not_an_mlflow_model(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"")

    assert find_mlmodel(tmp_path) is None
    assert not is_mlflow_model(tmp_path)
    assert not is_mlflow_model(tmp_path / "absent")


def test_mlmodel_is_found_in_a_blob_listing() -> None:
    names = ["model/conda.yaml", "model/MLmodel", "model/artifacts/x/MLmodel", "README.md"]

    assert find_mlmodel_in(names) == "model/MLmodel"
    assert find_mlmodel_in(["model.joblib"]) is None


def test_public_surface() -> None:
    import batchfx.scoring.mlflow

    assert set(batchfx.scoring.mlflow.__all__) == {
        "FILE_NAME_COLUMN", "MLMODEL", "OUTPUT_COLUMNS", "ROW_COLUMN", "SCORE_SCRIPT",
        "find_mlmodel", "find_mlmodel_in", "is_mlflow_model",
    }  # fmt: skip


def test_tabular_mini_batch_takes_file_name_and_row_from_its_row_sources(
        score: ModuleType) -> None:
    from batchfx.tabular.reading import RowSource, publish_row_sources

    mini_batch = pd.DataFrame({"age": [21, 69, 23], "bmi": [22.0, 28.0, 21.0]})
    publish_row_sources(mini_batch, (RowSource(0, "uploads/in/a.parquet", 500, 2),
                                     RowSource(1, "uploads/in/b.parquet", 0, 1)))

    result = score.run(mini_batch)

    assert result.values.tolist() == [[500, 0, "a.parquet"], [501, 1, "a.parquet"],
                                      [0, 0, "b.parquet"]]


def test_rows_of_text_cut_after_its_top_have_no_row_number(score: ModuleType) -> None:
    from batchfx.tabular.reading import RowSource, publish_row_sources

    mini_batch = pd.DataFrame({"age": [21, 69], "bmi": [22.0, 28.0]})
    publish_row_sources(mini_batch, (RowSource(0, "in/a.csv", 0, 1),
                                     RowSource(1, "in/b.csv", None, 1)))

    result = score.run(mini_batch)

    assert result["row"].tolist()[0] == 0 and pd.isna(result["row"].tolist()[1])
    assert result["file_name"].tolist() == ["a.csv", "b.csv"]
    assert str(result["row"].dtype) == "Int64"


def test_sources_of_another_frame_are_not_used(score: ModuleType) -> None:
    from batchfx.tabular.reading import RowSource, publish_row_sources

    mini_batch = pd.DataFrame({"age": [21], "bmi": [22.0]})
    publish_row_sources(mini_batch.copy(), (RowSource(0, "in/a.parquet", 9, 1),))

    assert score.run(mini_batch).values.tolist() == [[0, 0, ""]]
