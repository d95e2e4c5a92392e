"""Benchmark the digits example: `batchfx run` against a plain multiprocessing.Pool baseline.

    .venv/bin/python bench/bench_example.py [--files 3000] [--mini-batch-size 10] [--json PATH]

Both sides score the same files with the same score.py (init() once per worker process,
run() per mini-batch, 2 workers); both outputs must equal expected.txt or the bench exits 1.
The machine is noisy: read the ratio batchfx/baseline, not the absolute times.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "digits"
SCORE_SCRIPT = EXAMPLE / "code" / "score.py"
ARGUMENTS = ["--confidence", "0.0"]  # as in examples/digits/job.yml
WORKERS = 2  # process_count_per_node in the spec; the baseline pool gets the same number
RESULT_FILE = "parallel_run_step.txt"

SPEC_TEMPLATE = """\
name: digits-bench
source_directory: {source}
entry_script: score.py
model: {model}
inputs: {inputs}
output: results/digits-bench
mini_batch_size: {mini_batch_size}
error_threshold: 5
run_max_try: 3
run_invocation_timeout: 60
process_count_per_node: {workers}
output_action: append_row
append_row_file_name: {result_file}
arguments: {arguments}
logging_level: INFO
"""


class BenchError(Exception):
    """A run failed or produced wrong results: the bench reports it and exits 1."""


def load_by_path(name: str, path: Path) -> ModuleType:
    """Import the module at `path` under `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_lines(label: str, got: Sequence[str], expected: Sequence[str]) -> None:
    """Raise BenchError naming the first line where `got` differs from `expected`."""
    if list(got) == list(expected):
        return
    for number, (g, e) in enumerate(zip(got, expected, strict=False), start=1):
        if g != e:
            raise BenchError(f"{label}: line {number} is {g!r}, expected {e!r}")
    raise BenchError(f"{label}: {len(got)} lines, expected {len(expected)}")


# --- baseline: a plain multiprocessing.Pool -------------------------------------------------

_score: ModuleType | None = None  # score.py, imported once per pool worker


def _init_worker(model_dir: str) -> None:
    """Pool initializer: set up the environment as Azure ML does, import score.py, init()."""
    global _score
    os.environ["AZUREML_MODEL_DIR"] = os.path.dirname(model_dir)  # holds model/, as in Azure ML
    sys.argv = [str(SCORE_SCRIPT), *ARGUMENTS]
    _score = load_by_path("digits_score", SCORE_SCRIPT)
    _score.init()


def _run_mini_batch(mini_batch: list[str]) -> list[str]:
    assert _score is not None, "pool worker without score.py: _init_worker did not run"
    return [str(row) for row in _score.run(mini_batch)]


def run_baseline(model_dir: Path, inputs: list[Path], mini_batch_size: int) -> list[str]:
    """Score `inputs` with a Pool(WORKERS); return the rows in input order."""
    mini_batches = [
        [str(p) for p in inputs[start : start + mini_batch_size]]
        for start in range(0, len(inputs), mini_batch_size)
    ]
    with multiprocessing.Pool(WORKERS, _init_worker, (str(model_dir),)) as pool:
        # chunksize=1: one mini-batch per hand-out, as a queue message would be.
        results = pool.map(_run_mini_batch, mini_batches, chunksize=1)
    return [row for rows in results for row in rows]


# --- batchfx: the CLI against an Azurite started here ---------------------------------------


def batchfx_command() -> str:
    """The `batchfx` script of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / "batchfx"
    found = str(beside) if beside.is_file() else shutil.which("batchfx")
    if found is None:
        raise BenchError("no `batchfx` command: install the project (pip install -e .)")
    return found


def write_spec(folder: Path, data: Path, mini_batch_size: int) -> Path:
    """Write a job spec like examples/digits/job.yml pointing at the prepared data."""
    spec = folder / "job.yml"
    spec.write_text(
        SPEC_TEMPLATE.format(
            source=EXAMPLE / "code",
            model=data / "model",
            inputs=data / "inputs",
            mini_batch_size=mini_batch_size,
            workers=WORKERS,
            result_file=RESULT_FILE,
            arguments=json.dumps(ARGUMENTS),
        )
    )
    return spec


def run_batchfx(spec: Path, output: Path, connection_string: str) -> None:
    """Run `batchfx run` to completion; raise BenchError with its output if it fails."""
    command = [batchfx_command(), "run", str(spec), "--output", str(output), "--quiet",
               "--connection-string", connection_string]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise BenchError(
            f"batchfx run exited with {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
        )


def job_result(path: Path) -> dict[str, str]:
    """The `key: value` lines of job_result.txt."""
    pairs = (line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


# --- the bench ------------------------------------------------------------------------------


def bench(files: int, mini_batch_size: int, work: Path) -> dict[str, Any]:
    """Prepare the data, time both runs, check both outputs; return the numbers."""
    from batchfx.local.azurite import Azurite

    prepare = load_by_path("digits_prepare", EXAMPLE / "prepare.py").prepare
    started = time.perf_counter()
    data = prepare(work / "data", files)
    prepare_s = time.perf_counter() - started
    expected = (data / "expected.txt").read_text().splitlines()
    inputs = sorted((data / "inputs").glob("*.csv"))

    started = time.perf_counter()
    baseline_rows = run_baseline(data / "model", inputs, mini_batch_size)
    baseline_s = time.perf_counter() - started
    check_lines("baseline", baseline_rows, expected)

    spec = write_spec(work, data, mini_batch_size)
    output = work / "output"
    started = time.perf_counter()
    with Azurite() as azurite:
        azurite_s = time.perf_counter() - started
        started = time.perf_counter()
        run_batchfx(spec, output, azurite.connection_string)
        command_s = time.perf_counter() - started
    check_lines("batchfx", (output / RESULT_FILE).read_text().splitlines(), expected)
    summary = job_result(output / "job_result.txt")
    job_s = float(summary["elapsed_seconds"])
    job_rate = float(summary["items_per_second"])

    baseline_rate = files / baseline_s
    command_rate = files / command_s
    return {
        "files": files,
        "mini_batch_size": mini_batch_size,
        "workers": WORKERS,
        "cpu_count": os.cpu_count(),
        "prepare_seconds": round(prepare_s, 3),
        "azurite_start_seconds": round(azurite_s, 3),
        "baseline": {"seconds": round(baseline_s, 3), "items_per_second": round(baseline_rate, 2)},
        "batchfx_command": {"seconds": round(command_s, 3),
                            "items_per_second": round(command_rate, 2)},
        "batchfx_job": {"seconds": job_s, "items_per_second": job_rate},
        "ratio_command": round(command_rate / baseline_rate, 4),
        "ratio_job": round(job_rate / baseline_rate, 4),
    }  # fmt: skip


def print_table(r: dict[str, Any]) -> None:
    """Print the numbers as a small table."""
    print(f"files {r['files']}, mini-batch size {r['mini_batch_size']}, "
          f"workers {r['workers']}, cpus {r['cpu_count']} "
          f"(prepare {r['prepare_seconds']:.1f}s, Azurite start {r['azurite_start_seconds']:.1f}s,"
          " not timed below)")  # fmt: skip
    print(f"{'run':<26}{'seconds':>10}{'items/s':>10}{'vs baseline':>13}")
    rows = [
        ("baseline (Pool)", r["baseline"], 1.0),
        ("batchfx (whole command)", r["batchfx_command"], r["ratio_command"]),
        ("batchfx (job only)", r["batchfx_job"], r["ratio_job"]),
    ]
    for label, numbers, ratio in rows:
        print(f"{label:<26}{numbers['seconds']:>10.2f}{numbers['items_per_second']:>10.1f}"
              f"{ratio:>12.3f}x")  # fmt: skip
    print("both outputs equal expected.txt line for line")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000, help="input files to score")
    parser.add_argument("--mini-batch-size", type=int, default=10, help="files per run() call")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.files < 1:
        parser.error(f"--files: got {args.files}, expected a positive number")
    if args.mini_batch_size < 1:
        parser.error(f"--mini-batch-size: got {args.mini_batch_size}, expected a positive number")

    with tempfile.TemporaryDirectory(prefix="batchfx-bench-") as work:
        try:
            result = bench(args.files, args.mini_batch_size, Path(work))
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
    print_table(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
