"""Prepare the digits example: a trained model, input files and the expected results.

    python examples/digits/prepare.py [--count N] [--out DIR]

Writes DIR/model/model.joblib, DIR/inputs/digit-00000.csv ... and DIR/expected.txt (the
lines the job's parallel_run_step.txt must contain). Deterministic and idempotent.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
SCORE_SCRIPT = HERE / "code" / "score.py"
DEFAULT_OUT = HERE / "generated"
DEFAULT_COUNT = 300
MINI_BATCH_SIZE = 10  # as in job.yml
ARGUMENTS = ["--confidence", "0.0"]  # as in job.yml
RANDOM_STATE = 0


def held_out_split() -> tuple[Any, np.ndarray, np.ndarray]:
    """Train the classifier; return it with the held-out images and their labels."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data,
        digits.target,
        test_size=0.25,
        random_state=RANDOM_STATE,
        stratify=digits.target,
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    return model, x_test, y_test


def write_inputs(inputs_dir: Path, images: np.ndarray, count: int) -> list[Path]:
    """Write `count` one-image CSV files, cycling through `images`; drop stale ones."""
    inputs_dir.mkdir(parents=True, exist_ok=True)
    # A smaller --count than last time must not leave old files behind for the job to score.
    for stale in inputs_dir.glob("digit-*.csv"):
        stale.unlink()
    paths = []
    for i in range(count):
        path = inputs_dir / f"digit-{i:05d}.csv"
        pixels = images[i % len(images)].astype(int)
        path.write_text(",".join(str(p) for p in pixels) + "\n")
        paths.append(path)
    return paths


@contextlib.contextmanager
def scoring_environment(model_dir: Path, arguments: Sequence[str]) -> Iterator[None]:
    """Set AZUREML_MODEL_DIR and sys.argv as Azure ML does, restoring both afterwards."""
    saved_env = os.environ.get("AZUREML_MODEL_DIR")
    saved_argv = sys.argv
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir.parent)  # holds model/, as in Azure ML
    sys.argv = [str(SCORE_SCRIPT), *arguments]
    try:
        yield
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("AZUREML_MODEL_DIR", None)
        else:
            os.environ["AZUREML_MODEL_DIR"] = saved_env


def load_score_script(name: str = "digits_score") -> ModuleType:
    """Import a fresh copy of score.py by path (its globals are per copy)."""
    spec = importlib.util.spec_from_file_location(name, SCORE_SCRIPT)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the scoring script {SCORE_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def score_files(model_dir: Path, paths: Sequence[Path], arguments: Sequence[str]) -> list[str]:
    """Run score.py's init() then run() over `paths` in mini-batches, as a job would."""
    score = load_score_script()
    with scoring_environment(model_dir, arguments):
        score.init()
        rows: list[str] = []
        for start in range(0, len(paths), MINI_BATCH_SIZE):
            mini_batch = [str(p) for p in paths[start : start + MINI_BATCH_SIZE]]
            rows.extend(str(row) for row in score.run(mini_batch))
    return rows


def prepare(out_dir: Path, count: int = DEFAULT_COUNT) -> Path:
    """Write the model, `count` input files and expected.txt under `out_dir`; return it."""
    if count < 1:
        raise ValueError(f"count: got {count}, expected a positive number of input files")
    out_dir = Path(out_dir)
    model, images, _labels = held_out_split()

    model_dir = out_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")

    paths = write_inputs(out_dir / "inputs", images, count)
    rows = score_files(model_dir, sorted(paths), ARGUMENTS)
    (out_dir / "expected.txt").write_text("".join(f"{row}\n" for row in rows))
    return out_dir


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="input files to write")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    out_dir = prepare(args.out, args.count)
    elapsed = time.perf_counter() - started
    print(f"model:    {out_dir / 'model' / 'model.joblib'}")
    print(f"inputs:   {args.count} files in {out_dir / 'inputs'}")
    print(f"expected: {out_dir / 'expected.txt'}")
    print(f"done in {elapsed:.1f}s")


if __name__ == "__main__":
    main()
