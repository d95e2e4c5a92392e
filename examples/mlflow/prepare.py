"""Prepare the MLflow example: an MLflow model, Parquet input files and the expected results.

    python examples/mlflow/prepare.py [--files N] [--out DIR]

Writes DIR/model/ (an MLflow model folder: MLmodel, model.skops, requirements.txt ...),
DIR/inputs/flowers-000.parquet ... and DIR/expected.txt (the lines the job's
predictions.csv must contain). Re-running it gives the same model and files (MLmodel's
timestamp and uuid aside) and removes inputs left over from a larger --files.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from batchfx.core.row_format import format_rows
from batchfx.scoring.mlflow import FILE_NAME_COLUMN, ROW_COLUMN, SCORE_SCRIPT

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "generated"
DEFAULT_FILES = 3
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
RANDOM_STATE = 0


def held_out_split() -> tuple[Any, pd.DataFrame]:
    """Train a species classifier on named columns; return it with the held-out flowers."""
    iris = load_iris()
    features = pd.DataFrame(iris.data, columns=COLUMNS)
    species = iris.target_names[iris.target]
    x_train, x_test, y_train, _y_test = train_test_split(
        features, species, test_size=0.25, random_state=RANDOM_STATE, stratify=species
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    return model, x_test.reset_index(drop=True)


def save_mlflow_model(model: Any, sample: pd.DataFrame, model_dir: Path) -> None:
    """Save `model` as an MLflow model with a column signature (save_model needs a new dir)."""
    shutil.rmtree(model_dir, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(sample, model.predict(sample))
    # Listed rather than inferred: inference loads the model in a subprocess (seconds).
    requirements = [
        f"{name}=={importlib.metadata.version(name)}"
        for name in ("mlflow-skinny", "scikit-learn", "skops")
    ]
    mlflow.sklearn.save_model(
        model, str(model_dir), signature=signature, pip_requirements=requirements
    )


def write_inputs(inputs_dir: Path, flowers: pd.DataFrame, files: int) -> list[Path]:
    """Split `flowers` into `files` Parquet files; drop stale ones."""
    inputs_dir.mkdir(parents=True, exist_ok=True)
    # A smaller --files than last time must not leave old files behind for the job to score.
    for stale in inputs_dir.glob("flowers-*.parquet"):
        stale.unlink()
    paths = []
    for i, rows in enumerate(np.array_split(np.arange(len(flowers)), files)):
        path = inputs_dir / f"flowers-{i:03d}.parquet"
        flowers.iloc[rows].reset_index(drop=True).to_parquet(path, index=False)
        paths.append(path)
    return paths


@contextlib.contextmanager
def model_environment(model_dir: Path) -> Iterator[None]:
    """Set AZUREML_MODEL_DIR as Azure ML does, restoring it afterwards."""
    saved = os.environ.get("AZUREML_MODEL_DIR")
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AZUREML_MODEL_DIR", None)
        else:
            os.environ["AZUREML_MODEL_DIR"] = saved


def load_score_script(name: str = "mlflow_example_score") -> ModuleType:
    """Import a fresh copy of batchfx's built-in MLflow scoring script by path."""
    spec = importlib.util.spec_from_file_location(name, SCORE_SCRIPT)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the scoring script {SCORE_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def score_files(model_dir: Path, paths: Sequence[Path]) -> list[str]:
    """The job's output lines: each file as a tabular mini-batch that names its rows' file."""
    score = load_score_script()
    lines: list[str] = []
    with model_environment(model_dir):
        score.init()
        for path in paths:
            frame = pd.read_parquet(path)
            frame[FILE_NAME_COLUMN] = path.name
            frame[ROW_COLUMN] = range(len(frame))
            part, _header = format_rows(score.run(frame), "text", header=False)
            lines.extend(part.decode().splitlines())
    return lines


def prepare(out_dir: Path, files: int = DEFAULT_FILES) -> Path:
    """Write the MLflow model, `files` Parquet inputs and expected.txt under `out_dir`."""
    if files < 1:
        raise ValueError(f"files: got {files}, expected a positive number of input files")
    out_dir = Path(out_dir)
    model, flowers = held_out_split()
    if files > len(flowers):
        raise ValueError(f"files: got {files}, expected at most {len(flowers)} (one per flower)")
    save_mlflow_model(model, flowers, out_dir / "model")
    paths = write_inputs(out_dir / "inputs", flowers, files)
    lines = score_files(out_dir / "model", sorted(paths))
    (out_dir / "expected.txt").write_text("".join(f"{line}\n" for line in lines))
    return out_dir


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help="Parquet files to write")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    out_dir = prepare(args.out, args.files)
    elapsed = time.perf_counter() - started
    print(f"model:    {out_dir / 'model'}")
    print(f"inputs:   {args.files} Parquet files in {out_dir / 'inputs'}")
    print(f"expected: {out_dir / 'expected.txt'}")
    print(f"done in {elapsed:.1f}s")


if __name__ == "__main__":
    main()
