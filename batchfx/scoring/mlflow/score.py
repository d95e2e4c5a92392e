"""The scoring script batchfx runs for an MLflow model when the job names no entry script.

It does what Azure ML's no-code deployment of an MLflow model does: ``init()`` loads the
model through ``mlflow.pyfunc`` from ``AZUREML_MODEL_DIR``; ``run(mini_batch)`` reads each
input file (CSV, Parquet, JSON Lines), casts its columns to the model signature, calls
``predict`` once per file and returns one row per input row: ``row`` (its number in the
file, from 0), ``prediction``, ``file_name``. A tabular mini-batch (a DataFrame) is one
``predict``; its rows' files and numbers come from the row sources batchfx's reader
published for it (see ``batchfx.scoring.mlflow``). A model that returns several named outputs
(a DataFrame with several columns, or a dict) gets one column per output in place of
``prediction``; a 2-D array gives a ``prediction`` holding each row's list of values.

Errors raised here become a failed try whose message names the file:

    MLflowScoringError        base of what this script raises on purpose
    ├── MLflowModelError      the model cannot be loaded: no MLmodel, no pyfunc flavor,
    │                         mlflow or a package the model needs is not installed
    ├── InputFileError        an input file is of an unsupported type or cannot be read
    ├── InputSchemaError      an input's columns do not match the signature (missing, mistyped)
    └── PredictionError       predict() raised, or returned a wrong number of predictions

Columns that the signature does not name are dropped before ``predict`` (MLflow ignores
them too) and logged once; a model without a column signature gets the frame as read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from batchfx.scoring.mlflow import FILE_NAME_COLUMN, OUTPUT_COLUMNS, ROW_COLUMN
from batchfx.scoring.mlflow.detect import MAX_DEPTH, find_mlmodel
from batchfx.scoring.mlflow.signature import (
    Column,
    InputFileError,
    InputSchemaError,
    MLflowModelError,
    MLflowScoringError,
    PredictionError,
    cast_to_signature,
    describe_columns,
    signature_columns,
)
from batchfx.tabular.reading import RowSource, row_sources

__all__ = [
    "MISSING_EXTRA",
    "Column",
    "InputFileError",
    "InputSchemaError",
    "MLflowModelError",
    "MLflowScoringError",
    "PredictionError",
    "cast_to_signature",
    "init",
    "prediction_columns",
    "read_input",
    "run",
    "signature_columns",
]

MISSING_EXTRA = "MLflow models need the mlflow extra: pip install 'batchfx[mlflow]'"
FILE_TYPES = (".csv", ".parquet", ".pqt", ".jsonl")

# Under the scoring host this file is imported as "score", so name the logger explicitly.
logger = logging.getLogger("batchfx.scoring.mlflow.score")


@dataclass(frozen=True)
class _Model:
    pyfunc: Any
    columns: tuple[Column, ...] | None  # None: no column signature, frames go as read


_model: _Model | None = None


def init() -> None:
    """Load the MLflow model found under AZUREML_MODEL_DIR (once per worker)."""
    global _model
    model_dir = os.environ.get("AZUREML_MODEL_DIR")
    if not model_dir:
        raise MLflowModelError(
            "AZUREML_MODEL_DIR is not set: a job without an entry_script needs `model`"
            " pointing at an MLflow model folder"
        )
    _model = _load(Path(model_dir))


def run(mini_batch: Sequence[str] | pd.DataFrame) -> pd.DataFrame:
    """Score file paths (one predict per file) or a tabular DataFrame; one row per input row."""
    if _model is None:
        raise MLflowModelError("run() was called before init() loaded the MLflow model")
    if isinstance(mini_batch, pd.DataFrame):
        return _score_frame(_model, mini_batch)
    parts = [_score_file(_model, str(path)) for path in mini_batch]
    non_empty = [part for part in parts if len(part)]
    if not non_empty:
        return parts[0] if parts else pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    return pd.concat(non_empty, ignore_index=True)


def _import_mlflow() -> Any:
    try:
        import mlflow.models
        import mlflow.pyfunc
    except ImportError as exc:
        raise MLflowModelError(f"{MISSING_EXTRA} ({exc})") from exc
    return mlflow


def _load(model_dir: Path) -> _Model:
    try:
        mlmodel = find_mlmodel(model_dir)
    except ValueError as exc:
        raise MLflowModelError(str(exc)) from exc
    if mlmodel is None:
        raise MLflowModelError(
            f"no MLflow model in {model_dir}: neither it nor its subfolders (down to"
            f" {MAX_DEPTH} levels) hold an MLmodel file; point `model` at the folder that"
            " mlflow's save_model/log_model wrote, or give an entry_script"
        )
    mlflow = _import_mlflow()
    folder = mlmodel.parent
    try:
        flavors = sorted(mlflow.models.Model.load(str(mlmodel)).flavors)
    except Exception as exc:  # a malformed MLmodel raises whatever its YAML parse gives
        raise MLflowModelError(f"{mlmodel} is not a readable MLmodel file: {exc}") from exc
    if "python_function" not in flavors:
        raise MLflowModelError(
            f"the MLflow model in {folder} has no python_function flavor (it has"
            f" {', '.join(flavors) or 'none'}); models without it need an entry_script"
        )
    try:
        pyfunc = mlflow.pyfunc.load_model(str(folder))
    except ModuleNotFoundError as exc:
        raise MLflowModelError(
            f"the MLflow model in {folder} needs the package {exc.name!r}, which is not"
            f" installed; install the model's requirements: pip install -r"
            f" {folder / 'requirements.txt'}"
        ) from exc
    columns = signature_columns(pyfunc.metadata.get_input_schema())
    logger.info(
        "MLflow model %s loaded (flavors %s); signature: %s",
        folder,
        ", ".join(flavors),
        describe_columns(columns) if columns is not None else "none, columns are not cast",
    )
    return _Model(pyfunc=pyfunc, columns=columns)


def read_input(path: str, columns: Sequence[Column] | None) -> pd.DataFrame:
    """Read one CSV, Parquet or JSON Lines file; string columns of the signature stay text."""
    name = os.path.basename(path)
    suffix = Path(path).suffix.lower()
    if suffix not in FILE_TYPES:
        raise InputFileError(
            f"input file '{name}': file type '{suffix or '(none)'}' is not supported; MLflow"
            f" models score {', '.join(FILE_TYPES)} files (give an entry_script for others)"
        )
    try:
        if suffix == ".csv":
            # Read text columns as text, so "007" stays "007" rather than becoming 7.
            text = {c.name: object for c in columns or () if c.type == "string"}
            return pd.read_csv(path, dtype=text or None)
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"input file '{name}' could not be read: {exc}") from exc


def prediction_columns(predictions: Any, rows: int, source: str) -> pd.DataFrame:
    """What predict() returned as output columns: ``prediction``, or one per named output."""
    if isinstance(predictions, dict):
        predictions = pd.DataFrame(predictions)
    if isinstance(predictions, pd.DataFrame) and predictions.shape[1] != 1:
        out = predictions.reset_index(drop=True)
        out.columns = [str(c) for c in out.columns]
    elif isinstance(predictions, pd.DataFrame | pd.Series):
        values = predictions.to_numpy().reshape(len(predictions))
        out = pd.DataFrame({"prediction": values})
    else:
        array = np.asarray(predictions)
        if array.ndim == 0:
            raise PredictionError(f"the model returned one value ({array!r}) for {source}")
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        column = array if array.ndim == 1 else [item.tolist() for item in array]
        out = pd.DataFrame({"prediction": column})
    if len(out) != rows:
        raise PredictionError(
            f"the model returned {len(out)} predictions for {rows} rows of {source}"
        )
    return out


def _predict(
    model: _Model, frame: pd.DataFrame, source: str, where: Callable[[int], str]
) -> pd.DataFrame:
    if model.columns is not None:
        frame = cast_to_signature(frame, model.columns, source, where)
    try:
        predictions = model.pyfunc.predict(frame)
    except Exception as exc:
        raise PredictionError(f"predict() failed on {source}: {exc}") from exc
    return prediction_columns(predictions, len(frame), source)


def _with_keys(out: pd.DataFrame, rows: Any, file_names: Any) -> pd.DataFrame:
    out.insert(0, "row", rows)
    out["file_name"] = file_names
    return out


def _score_file(model: _Model, path: str) -> pd.DataFrame:
    name = os.path.basename(path)
    frame = read_input(path, model.columns)
    if len(frame) == 0:
        return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    out = _predict(model, frame, f"input file '{name}'", lambda i: f"row {i}")
    return _with_keys(out, np.arange(len(frame)), name)


def _score_frame(model: _Model, mini_batch: pd.DataFrame) -> pd.DataFrame:
    sources = row_sources(mini_batch)  # published for the very object the host read
    frame = mini_batch.reset_index(drop=True)
    keys = None
    if sources is not None and sum(s.rows for s in sources) == len(frame):
        keys = _keys_from_sources(sources)
    # Columns the caller added win over the sources; without either, rows count from 0.
    if FILE_NAME_COLUMN in frame.columns:
        file_names = frame.pop(FILE_NAME_COLUMN).astype(str).to_numpy()
    else:
        file_names = keys[0] if keys else np.full(len(frame), "", dtype=object)
    rows: Any
    if ROW_COLUMN in frame.columns:
        rows = frame.pop(ROW_COLUMN).to_numpy()
    else:
        rows = keys[1] if keys else np.arange(len(frame))
    shown = [name for name in dict.fromkeys(file_names) if name]
    source = "tabular mini-batch"
    if shown:
        source += " from " + ", ".join(f"'{n}'" for n in shown[:3])
        source += f" and {len(shown) - 3} more files" if len(shown) > 3 else ""

    def where(i: int) -> str:
        if not file_names[i]:
            return f"row {i}"
        if pd.isna(rows[i]):
            return f"row {i} of the mini-batch (from '{file_names[i]}')"
        return f"row {rows[i]} of '{file_names[i]}'"

    if len(frame) == 0:
        return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    return _with_keys(_predict(model, frame, source, where), rows, file_names)


def _keys_from_sources(sources: Sequence[RowSource]) -> tuple[Any, Any]:
    """Each row's file (base name, as for file inputs) and row number there (NA: unknown)."""
    counts = [s.rows for s in sources]
    file_names = np.repeat(
        np.array([os.path.basename(s.file_name) for s in sources], dtype=object), counts)
    known = [s.first_row is not None for s in sources]
    values = np.concatenate([np.arange(s.first_row or 0, (s.first_row or 0) + s.rows)
                             for s in sources] or [np.zeros(0, np.int64)])
    if all(known):
        return file_names, values
    # Text cut after its first line: the rows' numbers in the file are not known.
    missing = np.repeat(np.array([not k for k in known]), counts)
    return file_names, pd.arrays.IntegerArray(values.astype(np.int64), missing)
