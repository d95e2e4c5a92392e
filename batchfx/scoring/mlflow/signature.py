"""The model signature's columns and casting an input frame to them (pure pandas).

    MLflowScoringError        base of what the MLflow scorer raises on purpose
    ├── MLflowModelError      the model cannot be loaded: no MLmodel, no pyfunc flavor,
    │                         mlflow or a package the model needs is not installed
    ├── InputFileError        an input file is of an unsupported type or cannot be read
    ├── InputSchemaError      an input's columns do not match the signature (missing, mistyped)
    └── PredictionError       predict() raised, or returned a wrong number of predictions
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Column",
    "InputFileError",
    "InputSchemaError",
    "MLflowModelError",
    "MLflowScoringError",
    "PredictionError",
    "cast_to_signature",
    "describe_columns",
    "signature_columns",
]

_INTEGERS: dict[str, np.dtype[Any]] = {"integer": np.dtype("int32"), "long": np.dtype("int64")}
_FLOATS: dict[str, np.dtype[Any]] = {"float": np.dtype("float32"), "double": np.dtype("float64")}
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
_warned_extra: set[tuple[str, ...]] = set()

logger = logging.getLogger("batchfx.scoring.mlflow.score")


class MLflowScoringError(Exception):
    """Base of what the MLflow scoring script raises on purpose."""


class MLflowModelError(MLflowScoringError):
    """The MLflow model cannot be loaded."""


class InputFileError(MLflowScoringError):
    """An input file is of an unsupported type or cannot be read."""


class InputSchemaError(MLflowScoringError):
    """An input's columns do not match the model signature."""


class PredictionError(MLflowScoringError):
    """The model's predict() failed or returned a wrong number of predictions."""


@dataclass(frozen=True)
class Column:
    """One named input of the model signature: its name, MLflow type and whether required."""

    name: str
    type: str
    required: bool = True


def signature_columns(schema: Any) -> tuple[Column, ...] | None:
    """The named columns of an MLflow input schema; None for no schema, tensors or no names."""
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None
    columns = []
    for spec in schema.inputs:
        kind = spec.type
        type_name = kind.name if isinstance(kind, Enum) else str(kind)
        columns.append(Column(str(spec.name), type_name, bool(getattr(spec, "required", True))))
    return tuple(columns)


def describe_columns(columns: Sequence[Column]) -> str:
    return ", ".join(f"{c.name} ({c.type}{'' if c.required else ', optional'})" for c in columns)


class _MistypedError(Exception):
    """``subject`` (a value, or "a value") at row ``position`` ``problem`` ("is not a number")."""

    def __init__(self, subject: str, problem: str, position: int | None = None) -> None:
        super().__init__(f"{subject} {problem}")
        self.subject = subject
        self.problem = problem
        self.position = position


def _show(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)  # 30.5, not np.float64


def _first(mask: pd.Series[bool]) -> int:
    return int(np.flatnonzero(mask.to_numpy(dtype=bool))[0])


def _numbers(series: pd.Series[Any]) -> pd.Series[Any]:
    if pd.api.types.is_bool_dtype(series):
        return series.astype("int64")
    if pd.api.types.is_numeric_dtype(series):
        return series
    converted = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & converted.isna()
    if bad.any():
        i = _first(bad)
        raise _MistypedError(_show(series.iloc[i]), "is not a number", i)
    return converted


def _to_integer(series: pd.Series[Any], dtype: np.dtype[Any]) -> pd.Series[Any]:
    numbers = _numbers(series)
    missing = numbers.isna()
    if missing.any():
        raise _MistypedError("a value", "is missing (integers cannot be)", _first(missing))
    if not pd.api.types.is_integer_dtype(numbers):
        fraction = numbers != np.floor(numbers.astype("float64"))
        if fraction.any():
            i = _first(fraction)
            raise _MistypedError(_show(series.iloc[i]), "is not a whole number", i)
    limits = np.iinfo(dtype)
    outside = (numbers < limits.min) | (numbers > limits.max)
    if outside.any():
        i = _first(outside)
        raise _MistypedError(_show(series.iloc[i]), f"does not fit in {dtype}", i)
    return numbers.astype(dtype)


def _to_boolean(series: pd.Series[Any]) -> pd.Series[Any]:
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.astype(bool)
    mapped = series.astype(str).str.strip().str.lower().map(_BOOLEANS)
    bad = mapped.isna()
    if bad.any():
        i = _first(bad)
        raise _MistypedError(_show(series.iloc[i]), "is not true or false", i)
    return mapped.astype(bool)


def _text(value: Any) -> Any:
    if isinstance(value, str) or value is None:
        return value
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    return str(value)


def _to_datetime(series: pd.Series[Any]) -> pd.Series[Any]:
    if pd.api.types.is_datetime64_any_dtype(series):
        return series
    try:
        # "mixed": each value parsed on its own, so "2024-01-02" and "2024-01-02 10:00" both do.
        converted = pd.to_datetime(series, errors="coerce", format="mixed")
    except (TypeError, ValueError) as exc:
        raise _MistypedError("the values", f"are not dates ({exc})") from exc
    bad = series.notna() & converted.isna()
    if bad.any():
        i = _first(bad)
        raise _MistypedError(_show(series.iloc[i]), "is not a date", i)
    return converted


def _cast(series: pd.Series[Any], type_name: str) -> pd.Series[Any]:
    if type_name in _INTEGERS:
        return _to_integer(series, _INTEGERS[type_name])
    if type_name in _FLOATS:
        return _numbers(series).astype(_FLOATS[type_name])
    if type_name == "boolean":
        return _to_boolean(series)
    if type_name == "string":
        return series.map(_text).astype(object)
    if type_name == "datetime":
        return _to_datetime(series)
    return series  # binary, arrays, objects, maps: left to MLflow's own enforcement


def cast_to_signature(
    frame: pd.DataFrame,
    columns: Sequence[Column],
    source: str,
    where: Callable[[int], str],
) -> pd.DataFrame:
    """The signature's columns of ``frame``, cast to its types; raise InputSchemaError naming
    ``source`` and every missing or mistyped column (``where(i)`` names row position i)."""
    present = {str(name): name for name in frame.columns}
    expected = {c.name for c in columns}
    missing = [c.name for c in columns if c.required and c.name not in present]
    extra = [name for name in present if name not in expected]
    cast: dict[str, pd.Series[Any]] = {}
    mistyped = []
    for column in columns:
        if column.name not in present:
            continue
        series = frame[present[column.name]].reset_index(drop=True)
        try:
            cast[column.name] = _cast(series, column.type)
        except _MistypedError as exc:
            at = "" if exc.position is None else f" in {where(exc.position)}"
            mistyped.append(
                f"'{column.name}' should be {column.type}: {exc.subject}{at} {exc.problem}"
            )
    if missing or mistyped:
        problems = []
        if missing:
            problems.append("missing columns: " + ", ".join(f"'{n}'" for n in missing))
        if mistyped:
            problems.append("mistyped columns: " + "; ".join(mistyped))
        if extra:
            problems.append("extra columns (ignored): " + ", ".join(f"'{n}'" for n in extra))
        raise InputSchemaError(
            f"{source} does not match the model signature: {'; '.join(problems)}."
            f" The model expects: {describe_columns(columns)}"
        )
    if extra and tuple(extra) not in _warned_extra:
        _warned_extra.add(tuple(extra))
        logger.warning("%s: columns not in the model signature are ignored: %s", source, extra)
    return pd.DataFrame(cast, index=pd.RangeIndex(len(frame)))
