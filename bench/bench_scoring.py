"""Benchmark issue 11's workload: `batchfx run` against a multiprocessing.Pool, whole trees.

    .venv/bin/python bench/bench_scoring.py                       # 5,000 files, 3 rounds
    .venv/bin/python bench/bench_scoring.py --rounds 5 --json out.json
    .venv/bin/python bench/bench_scoring.py --cases files-10,files-100 --files 1000

Each case runs as a command of its own and is measured whole: wall time, CPU-seconds of
every process of its tree (batchfx, its workers, the script processes and Azurite; an
Azurite shared by a case counts for what it spent during it), peak resident memory of the
tree, and when its first mini-batch result was there. Rounds are interleaved (every case
once per round, in a rotating order) and medians reported with the machine's load beside
them; ratios compare a batchfx case with its baseline measured in the same rounds. Every
batchfx output must equal its baseline's, or the bench exits 1. No assertions on speed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from process_tree import Measured, become_subreaper, load_average, measure

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WORKLOAD = str(Path(__file__).resolve().parent / "scoring_workload.py")
BATCHFX = str(Path(PYTHON).parent / "batchfx")
CONTAINER = "benchdata"

# case -> (baseline case, what it is)
PAIRS = {
    "files-10": ("pool-10", "local CSV files, mini_batch_size 10"),
    "files-100": ("pool-100", "local CSV files, mini_batch_size 100"),
    "blobs-10": ("pool-blobs-10", "the files as blobs in Azurite, mini_batch_size 10"),
    "parquet-rows": ("pool-parquet", "1M-row Parquet, mini_batch_size \"100000 rows\""),
    "parquet-1mb": ("pool-parquet", "1M-row Parquet, mini_batch_size \"1MB\""),
}
SPEC = """\
name: bench-{case}
source_directory: {root}/{code}
entry_script: score.py
model: {root}/model
inputs: {inputs}
output: results/bench
mini_batch_size: {size}
process_count_per_node: 2
allow_reuse: false
{extra}"""


class BenchError(Exception):
    """A run failed or gave other results than its baseline: reported, exit 1."""


@dataclass(frozen=True)
class Run:
    """One measured run of one case."""

    case: str
    measured: Measured
    first_s: float  # seconds from launch to the first mini-batch result


def _spec(work: Path, case: str) -> Path:
    root = work / "data"
    size = {"files-10": "10", "files-100": "100", "blobs-10": "10",
            "parquet-rows": '"100000 rows"', "parquet-1mb": "1MB"}[case]
    if case.startswith("parquet"):
        inputs = f"{{path: {root}/parquet, type: tabular, format: parquet}}"
        extra = "output_format: parquet\nappend_row_file_name: predictions.parquet\n"
        code = "tabular_code"
    else:
        inputs = f"{CONTAINER}/inputs" if case.startswith("blobs") else f"{root}/inputs"
        extra, code = "", "code"
    path = work / f"{case}.yml"
    path.write_text(SPEC.format(case=case, root=root, code=code, inputs=inputs, size=size,
                                extra=extra))
    return path


def _command(work: Path, case: str, out: Path, connection: str) -> list[str]:
    root = str(work / "data")
    if case.startswith("pool-parquet"):
        return [PYTHON, WORKLOAD, "pool-parquet", root, "--out", str(out / "rows.parquet")]
    if case.startswith("pool-blobs"):
        return [PYTHON, WORKLOAD, "pool-blobs", root, "--mini-batch-size", "10", "--out",
                str(out / "rows.txt"), "--connection-string", connection,
                "--container", CONTAINER]
    if case.startswith("pool"):
        return [PYTHON, WORKLOAD, "pool", root, "--mini-batch-size", case.split("-")[1],
                "--out", str(out / "rows.txt")]
    command = [BATCHFX, "run", str(_spec(work, case)), "--output", str(out), "--quiet"]
    return command + (["--connection-string", connection] if case.startswith("blobs") else [])


def _first_result(case: str, out: Path, started_at: float) -> float:
    if case.startswith("pool"):
        name = "rows.parquet" if "parquet" in case else "rows.txt"
        return float(Path(f"{out / name}.first").read_text()) - started_at
    with open(out / "processed_mini-batches.csv", newline="") as stream:
        ends = [datetime.fromisoformat(r["end"]).timestamp() for r in csv.DictReader(stream)
                if r["end"]]
    return min(ends) - started_at


def _check(case: str, out: Path, reference: Path) -> None:
    if "parquet" in case:
        import pandas as pd

        got = pd.read_parquet(out / "predictions.parquet")
        expected = pd.read_parquet(reference / "rows.parquet")
        if not got.reset_index(drop=True).equals(expected.reset_index(drop=True)):
            raise BenchError(f"{case}: predictions.parquet differs from the pool's rows")
        return
    got = (out / "parallel_run_step.txt").read_bytes()
    if got != (reference / "rows.txt").read_bytes():
        raise BenchError(f"{case}: parallel_run_step.txt differs from the pool's rows")


def run_case(work: Path, case: str, number: int, connection: str, shared: list[int]) -> Run:
    """Run one case once, measure it and check its output against its baseline's."""
    out = work / "out" / f"{case}-{number}"
    shutil.rmtree(out, ignore_errors=True)  # a folder kept from an earlier bench (--work)
    out.mkdir(parents=True)
    measured = measure(_command(work, case, out, connection), cwd=ROOT,
                       shared=shared if "blobs" in case else (), keep=shared)
    if measured.returncode != 0:
        raise BenchError(f"{case} exited with {measured.returncode}:\n{measured.output[-3000:]}")
    if measured.left_running:
        raise BenchError(f"{case} left processes running: {measured.left_running}")
    if not case.startswith("pool"):
        baseline = PAIRS[case][0]
        _check(case, out, work / "out" / f"{baseline}-{number}")
    return Run(case, measured, _first_result(case, out, measured.started_at))


def _median(runs: list[Run], what: str) -> float:
    values = {"wall": [r.measured.wall_s for r in runs], "cpu": [r.measured.cpu_s for r in runs],
              "rss": [r.measured.peak_rss_mb for r in runs], "first": [r.first_s for r in runs],
              "load": [r.measured.load for r in runs]}[what]
    return statistics.median(values)


def summarize(runs: list[Run], cases: list[str]) -> dict[str, Any]:
    """Medians per case, and each batchfx case's ratios to its baseline."""
    by_case = {c: [r for r in runs if r.case == c] for c in cases}
    result: dict[str, Any] = {}
    for case, mine in by_case.items():
        result[case] = {what: round(_median(mine, what), 3)
                        for what in ("wall", "cpu", "rss", "first", "load")}
        result[case]["rounds"] = len(mine)
    for case, (baseline, what) in PAIRS.items():
        if case in result and baseline in result:
            mine, base = result[case], result[baseline]
            mine.update(what=what, baseline=baseline,
                        speed_ratio=round(base["wall"] / mine["wall"], 3),
                        cpu_ratio=round(mine["cpu"] / base["cpu"], 3),
                        rss_ratio=round(mine["rss"] / base["rss"], 3),
                        first_delta_s=round(mine["first"] - base["first"], 2))
    return result


def print_table(result: dict[str, Any]) -> None:
    """Print the medians and ratios."""
    print(f"{'case':<14}{'wall s':>8}{'CPU s':>8}{'peak MB':>9}{'first s':>9}{'load':>6}"
          f"{'speed':>8}{'CPU':>7}{'RSS':>6}{'first':>7}")
    for case, r in result.items():
        ratios = (f"{r['speed_ratio']:>7.2f}x{r['cpu_ratio']:>6.2f}x{r['rss_ratio']:>5.2f}x"
                  f"{r['first_delta_s']:>+6.1f}s" if "speed_ratio" in r else "")
        print(f"{case:<14}{r['wall']:>8.2f}{r['cpu']:>8.2f}{r['rss']:>9.0f}{r['first']:>9.2f}"
              f"{r['load']:>6.2f}{ratios}")
    print("speed: baseline wall / batchfx wall (higher is better); CPU, RSS: batchfx / "
          "baseline; first: seconds after the baseline's first result")


def _upload_blobs(connection: str, inputs: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from azure.storage.blob import ContainerClient

    client = ContainerClient.from_connection_string(connection, CONTAINER)
    client.create_container()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda p: client.upload_blob(f"inputs/{p.name}", p.read_bytes()),
                      sorted(inputs.iterdir())))


def bench(work: Path, cases: list[str], rounds: int) -> list[Run]:
    """Every case ``rounds`` times, interleaved; baselines first within a round."""
    from batchfx.local.azurite import Azurite

    needed = sorted({*cases, *(PAIRS[c][0] for c in cases if c in PAIRS)},
                    key=lambda c: (not c.startswith("pool"), c))
    runs: list[Run] = []
    with Azurite() as azurite:
        if any("blobs" in c for c in needed):
            _upload_blobs(azurite.connection_string, work / "data" / "inputs")
        shared = [azurite.pid] if azurite.pid else []
        for number in range(rounds):
            pools = [c for c in needed if c.startswith("pool")]
            others = [c for c in needed if not c.startswith("pool")]
            turn = number % max(1, len(others))
            for case in pools + others[turn:] + others[:turn]:
                run = run_case(work, case, number, azurite.connection_string, shared)
                runs.append(run)
                m = run.measured
                print(f"round {number + 1} {case:<14} wall {m.wall_s:6.2f}s  CPU {m.cpu_s:6.2f}s"
                      f"  peak {m.peak_rss_mb:5.0f} MB  first {run.first_s:5.2f}s  load "
                      f"{m.load:.2f}", flush=True)
    return runs


def count_ops(work: Path, cases: list[str]) -> dict[str, Any]:
    """Storage requests per mini-batch of each case, counted by a proxy in front of an
    Azurite of their own (not timed: the proxy costs CPU of its own)."""
    from load_stack import counting_proxy

    from batchfx.local.azurite import Azurite

    found: dict[str, Any] = {}
    with Azurite() as azurite, counting_proxy(azurite) as proxy:
        _upload_blobs(azurite.connection_string, work / "data" / "inputs")
        for case in cases:
            before = proxy.snapshot()
            out = work / "out" / f"{case}-ops"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            command = [BATCHFX, "run", str(_spec(work, case)), "--output", str(out), "--quiet",
                       "--connection-string", proxy.connection_string]
            done = measure(command, cwd=ROOT)
            if done.returncode != 0:
                raise BenchError(f"{case} (counted) exited with {done.returncode}:\n"
                                 f"{done.output[-3000:]}")
            ops = proxy.snapshot() - before
            with open(out / "processed_mini-batches.csv", newline="") as stream:
                mini_batches = sum(1 for _ in csv.DictReader(stream))
            found[case] = {"mini_batches": mini_batches, "ops": ops.total,
                           "ops_per_mini_batch": round(ops.total / mini_batches, 2),
                           "by_service": {k: round(v / mini_batches, 2)
                                          for k, v in ops.by_service().items()}}
            print(f"ops {case:<13} {ops.total} requests for {mini_batches} mini-batches: "
                  f"{ops.total / mini_batches:.2f} per mini-batch {found[case]['by_service']}",
                  flush=True)
    return found


def _compile_batchfx() -> None:
    """Byte-compile batchfx as installing a wheel does (not timed). An editable install
    where PYTHONDONTWRITEBYTECODE is set (this sandbox) would otherwise compile every
    module from source in every process of every run, a cost no installed app pays."""
    import compileall

    compileall.compile_dir(str(ROOT / "batchfx"), quiet=1)
    compileall.compile_file(str(ROOT / "function_app.py"), quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--parquet-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default=",".join(PAIRS),
                        help=f"batchfx cases to run, with their baselines: {', '.join(PAIRS)}")
    parser.add_argument("--work", type=Path, help="folder to keep the data in (reused)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--ops", default="files-10,blobs-10",
                        help="cases whose storage requests per mini-batch are counted "
                             "(\"\" for none)")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in PAIRS]
    if unknown or args.rounds < 1:
        parser.error(f"--cases: unknown {unknown}" if unknown else "--rounds: at least 1")
    become_subreaper()
    with tempfile.TemporaryDirectory(prefix="batchfx-bench-") as temp:
        work = args.work or Path(temp)
        data = work / "data"
        parquet = any("parquet" in c for c in cases)
        # A --work folder kept from a run of other cases may lack the Parquet input.
        if not (data / "model").is_dir() or (parquet and not (data / "parquet").is_dir()):
            import subprocess

            rows = str(args.parquet_rows if parquet else 0)
            subprocess.run([PYTHON, WORKLOAD, "prepare", str(data), "--files", str(args.files),
                            "--parquet-rows", rows], check=True)
        _compile_batchfx()
        print(f"cpus {os.cpu_count()}, load {load_average():.2f}, files {args.files}, "
              f"rounds {args.rounds}", flush=True)
        try:
            runs = bench(work, cases, args.rounds)
            ops = count_ops(work, [c for c in args.ops.split(",") if c])
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
    result = summarize(runs, sorted({r.case for r in runs}))
    print_table(result)
    result["ops"] = ops
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
