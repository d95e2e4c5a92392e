"""Prepare the tabular example: a churn model, a Parquet customer table and the expected results.

    python examples/tabular/prepare.py [--rows N] [--files N] [--out DIR]

Writes DIR/model/model.joblib (a scikit-learn pipeline), DIR/inputs/customers-000.parquet
... (N rows of customer features over --files files, row groups of 100,000 rows) and
DIR/expected.parquet (what the job's predictions.parquet must hold, computed by calling
code/score.py in-process over mini-batches of 100,000 rows). Deterministic: the same
arguments give the same files. Stale inputs of an earlier run are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).resolve().parent
SCORE_SCRIPT = HERE / "code" / "score.py"
DEFAULT_OUT = HERE / "generated"
DEFAULT_ROWS = 1_000_000
ROW_GROUP_SIZE = 100_000  # one row group per mini-batch of job.yml's "100000 rows"
MINI_BATCH_ROWS = 100_000  # as in job.yml
TRAINING_ROWS = 50_000
DATA_SEED, TRAINING_SEED = 2026, 7
NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "support_calls",
           "paperless_billing"]
CATEGORICAL = ["contract", "internet"]
CONTRACTS = np.array(["month-to-month", "one-year", "two-year"], dtype=object)
INTERNET = np.array(["dsl", "fiber", "none"], dtype=object)


def customers(rows: int, seed: int, first_id: int = 0) -> pd.DataFrame:
    """A synthetic telco customer table: ids ``first_id``.. and seven features."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, rows)
    monthly = np.round(rng.uniform(18.0, 120.0, rows), 2)
    return pd.DataFrame({
        "customer_id": np.arange(first_id, first_id + rows, dtype=np.int64),
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": np.round(monthly * tenure * rng.uniform(0.9, 1.1, rows), 2),
        "support_calls": rng.poisson(1.2, rows),
        "contract": CONTRACTS[rng.choice(3, rows, p=[0.55, 0.25, 0.2])],
        "internet": INTERNET[rng.choice(3, rows, p=[0.35, 0.45, 0.2])],
        "paperless_billing": rng.random(rows) < 0.6,
    })


def churned(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Who churns: a noisy logistic rule (month-to-month, short tenure, many calls...)."""
    logit = (-1.2 + 1.4 * (frame["contract"] == "month-to-month").to_numpy()
             - 0.04 * frame["tenure_months"].to_numpy()
             + 0.012 * frame["monthly_charges"].to_numpy()
             + 0.4 * frame["support_calls"].to_numpy()
             + 0.5 * (frame["internet"] == "fiber").to_numpy()
             + 0.2 * frame["paperless_billing"].to_numpy())
    rng = np.random.default_rng(seed)
    return rng.random(len(frame)) < 1.0 / (1.0 + np.exp(-logit))


def train_model() -> Pipeline:
    """A scaler + one-hot encoder + logistic regression, fitted on fresh customers."""
    frame = customers(TRAINING_ROWS, TRAINING_SEED)
    prep = ColumnTransformer([("numeric", StandardScaler(), NUMERIC),
                              ("categorical", OneHotEncoder(handle_unknown="ignore"),
                               CATEGORICAL)])
    model = Pipeline([("prep", prep), ("classifier", LogisticRegression(max_iter=1000))])
    model.fit(frame[NUMERIC + CATEGORICAL], churned(frame, TRAINING_SEED + 1))
    return model


def write_inputs(inputs_dir: Path, table: pa.Table, files: int) -> list[Path]:
    """Split ``table`` into ``files`` Parquet files of row groups of ROW_GROUP_SIZE rows."""
    inputs_dir.mkdir(parents=True, exist_ok=True)
    # A smaller --files than last time must not leave old files behind for the job to score.
    for stale in inputs_dir.glob("customers-*.parquet"):
        stale.unlink()
    bounds = np.linspace(0, table.num_rows, files + 1).astype(int)
    paths = []
    for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
        path = inputs_dir / f"customers-{index:03d}.parquet"
        pq.write_table(table.slice(int(start), int(stop - start)), path,
                       row_group_size=ROW_GROUP_SIZE)
        paths.append(path)
    return paths


@contextlib.contextmanager
def model_environment(model_dir: Path) -> Iterator[None]:
    """Set AZUREML_MODEL_DIR as Azure ML does, restoring it afterwards."""
    saved = os.environ.get("AZUREML_MODEL_DIR")
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir.parent)  # holds model/, as in Azure ML
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AZUREML_MODEL_DIR", None)
        else:
            os.environ["AZUREML_MODEL_DIR"] = saved


def load_score_script(name: str = "tabular_example_score") -> ModuleType:
    """Import a fresh copy of score.py by path (its globals are per copy)."""
    spec = importlib.util.spec_from_file_location(name, SCORE_SCRIPT)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the scoring script {SCORE_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def score_rows(model_dir: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Run score.py's init() then run() over ``frame`` in mini-batches, as the job does."""
    score = load_score_script()
    with model_environment(model_dir):
        score.init()
        parts = [score.run(frame.iloc[start:start + MINI_BATCH_ROWS].reset_index(drop=True))
                 for start in range(0, len(frame), MINI_BATCH_ROWS)]
    return pd.concat(parts, ignore_index=True)


def prepare(out_dir: Path, rows: int = DEFAULT_ROWS, files: int = 1, *,
            expected: bool = True) -> Path:
    """Write the model, ``rows`` customers over ``files`` Parquet files and (unless
    ``expected`` is false) expected.parquet; returns ``out_dir``."""
    if rows < 1:
        raise ValueError(f"rows: got {rows}, expected a positive number of rows")
    if not 1 <= files <= rows:
        raise ValueError(f"files: got {files}, expected 1 to {rows} (the number of rows)")
    out_dir = Path(out_dir)
    model_dir = out_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(train_model(), model_dir / "model.joblib")
    table = pa.Table.from_pandas(customers(rows, DATA_SEED), preserve_index=False)
    write_inputs(out_dir / "inputs", table, files)
    if expected:
        rows_out = score_rows(model_dir, table.to_pandas())
        rows_out.to_parquet(out_dir / "expected.parquet", index=False)
    return out_dir


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="customers to write")
    parser.add_argument("--files", type=int, default=1, help="Parquet files to split them over")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    out_dir = prepare(args.out, args.rows, args.files)
    elapsed = time.perf_counter() - started
    print(f"model:    {out_dir / 'model' / 'model.joblib'}")
    print(f"inputs:   {args.rows} rows in {args.files} Parquet file(s) in {out_dir / 'inputs'}")
    print(f"expected: {out_dir / 'expected.parquet'}")
    print(f"done in {elapsed:.1f}s")


if __name__ == "__main__":
    main()
