"""Benchmark the tabular example: `batchfx run` against a plain pandas + pyarrow loop.

    .venv/bin/python bench/bench_tabular.py [--rows 1000000] [--files 1] [--json PATH]

Both sides score the same Parquet files with the same examples/tabular/code/score.py
(init() once, run() per mini-batch of the same rows); their outputs must be equal or the
bench exits 1. The machine is noisy: read the ratio batchfx/baseline, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import yaml
from bench_example import BenchError, job_result, load_by_path, run_batchfx

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tabular"
SCORE_SCRIPT = EXAMPLE / "code" / "score.py"
RESULT_FILE = "predictions.parquet"


# --- baseline: read the row groups with pyarrow, run() per chunk, concatenate -----------------


def run_baseline(model_dir: Path, inputs: list[Path], mini_batch_rows: int) -> pd.DataFrame:
    """Score every row group of ``inputs`` in chunks of ``mini_batch_rows`` rows, in order."""
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir.parent)  # holds model/, as in Azure ML
    score = load_by_path("tabular_score", SCORE_SCRIPT)
    score.init()
    parts = []
    for path in inputs:
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            rows = parquet.read_row_group(group).to_pandas()
            for start in range(0, len(rows), mini_batch_rows):
                chunk = rows.iloc[start:start + mini_batch_rows].reset_index(drop=True)
                parts.append(score.run(chunk))
    return pd.concat(parts, ignore_index=True)


# --- batchfx: the CLI against an Azurite started here ---------------------------------------


def write_spec(folder: Path, data: Path, mini_batch_rows: int) -> tuple[Path, int]:
    """The example's job.yml pointing at the prepared data; returns it and its workers."""
    spec = yaml.safe_load((EXAMPLE / "job.yml").read_text())
    spec.update(source_directory=str(EXAMPLE / "code"), model=str(data / "model"),
                mini_batch_size=f"{mini_batch_rows} rows", append_row_file_name=RESULT_FILE)
    spec["inputs"] = {**spec["inputs"], "path": str(data / "inputs")}
    path = folder / "job.yml"
    path.write_text(yaml.safe_dump(spec))
    return path, int(spec["process_count_per_node"])


def check_equal(label: str, got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Raise BenchError naming the first row where ``got`` differs from ``expected``."""
    if got.equals(expected):
        return
    if list(got.columns) != list(expected.columns) or len(got) != len(expected):
        raise BenchError(f"{label}: {len(got)} rows of {list(got.columns)}, expected "
                         f"{len(expected)} rows of {list(expected.columns)}")
    differ = (got != expected).any(axis=1).to_numpy().nonzero()[0]
    first = int(differ[0]) if len(differ) else 0
    raise BenchError(f"{label}: row {first} is {got.iloc[first].to_dict()}, expected "
                     f"{expected.iloc[first].to_dict()}")


# --- the bench ------------------------------------------------------------------------------


def bench(rows: int, files: int, mini_batch_rows: int, work: Path) -> dict[str, Any]:
    """Prepare the data, time both runs, check the outputs equal; return the numbers."""
    from batchfx.local.azurite import Azurite

    prepare = load_by_path("tabular_prepare", EXAMPLE / "prepare.py").prepare
    started = time.perf_counter()
    data = prepare(work / "data", rows, files, expected=False)
    prepare_s = time.perf_counter() - started
    inputs = sorted((data / "inputs").glob("*.parquet"))

    started = time.perf_counter()
    baseline = run_baseline(data / "model", inputs, mini_batch_rows)
    baseline_s = time.perf_counter() - started
    if len(baseline) != rows:
        raise BenchError(f"baseline: {len(baseline)} rows, expected {rows}")

    spec, workers = write_spec(work, data, mini_batch_rows)
    output = work / "output"
    started = time.perf_counter()
    with Azurite() as azurite:
        azurite_s = time.perf_counter() - started
        started = time.perf_counter()
        run_batchfx(spec, output, azurite.connection_string)
        command_s = time.perf_counter() - started
    check_equal("batchfx", pd.read_parquet(output / RESULT_FILE), baseline)
    summary = job_result(output / "job_result.txt")

    def rate(seconds: float) -> dict[str, float]:
        return {"seconds": round(seconds, 3), "rows_per_second": round(rows / seconds, 1)}

    job_s = float(summary["elapsed_seconds"])
    return {
        "rows": rows, "files": files, "mini_batch_rows": mini_batch_rows, "workers": workers,
        "cpu_count": os.cpu_count(), "prepare_seconds": round(prepare_s, 3),
        "azurite_start_seconds": round(azurite_s, 3),
        "mini_batches": int(summary["mini_batches_total"]),
        "baseline": rate(baseline_s), "batchfx_command": rate(command_s),
        "batchfx_job": rate(job_s),
        "ratio_command": round(baseline_s / command_s, 4),
        "ratio_job": round(baseline_s / job_s, 4),
    }  # fmt: skip


def print_table(r: dict[str, Any]) -> None:
    """Print the numbers as a small table."""
    print(f"rows {r['rows']}, files {r['files']}, mini-batches of {r['mini_batch_rows']} rows "
          f"({r['mini_batches']}), batchfx workers {r['workers']}, cpus {r['cpu_count']} "
          f"(prepare {r['prepare_seconds']:.1f}s, Azurite start "
          f"{r['azurite_start_seconds']:.1f}s, not timed below)")  # fmt: skip
    print(f"{'run':<28}{'seconds':>10}{'rows/s':>12}{'vs baseline':>13}")
    lines = [
        ("baseline (pyarrow loop)", r["baseline"], 1.0),
        ("batchfx (whole command)", r["batchfx_command"], r["ratio_command"]),
        ("batchfx (job only)", r["batchfx_job"], r["ratio_job"]),
    ]
    for label, numbers, ratio in lines:
        print(f"{label:<28}{numbers['seconds']:>10.2f}{numbers['rows_per_second']:>12.0f}"
              f"{ratio:>12.3f}x")  # fmt: skip
    print("batchfx's predictions.parquet equals the baseline's rows (DataFrame.equals)")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to score")
    parser.add_argument("--files", type=int, default=1, help="Parquet files to split them over")
    parser.add_argument("--mini-batch-rows", type=int, default=100_000,
                        help="rows per run() call")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    for name in ("rows", "files", "mini_batch_rows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: got {getattr(args, name)}, expected a "
                         "positive number")
    if args.files > args.rows:
        parser.error(f"--files: got {args.files}, expected at most --rows ({args.rows})")

    with tempfile.TemporaryDirectory(prefix="batchfx-bench-tabular-") as work:
        try:
            result = bench(args.rows, args.files, args.mini_batch_rows, Path(work))
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
    print_table(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
