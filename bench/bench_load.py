"""Load benchmark: 100 concurrent submits, one job of 20,000 mini-batches, and the storage
operations per mini-batch at several sizes, all on the local runner against Azurite.

    .venv/bin/python bench/bench_load.py [--submits 100] [--mini-batches 20000]
                                         [--sizes 500,2000] [--input files|csv] [--json PATH]
                                         [--queue-window 2000]

Every wire request batchfx makes (HTTP function, orchestrator, partitioner, scorer workers,
finalize) goes through a counting FaultProxy (no faults) in front of Azurite; the bench
sets up and checks through its own direct connection, which is not counted. Every job
must complete with exact counts and every row once, in order, or the bench exits 1.
There are no assertions on speed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from batchfx.cli.client import ApiClient, ApiError  # noqa: E402
from batchfx.local.azurite import Azurite  # noqa: E402
from batchfx.services.jobs import list_jobs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_stack import (  # noqa: E402
    LoadApp,
    LoadError,
    check_rows,
    counting_proxy,
    make_app,
    percentile,
    queue_depth_probe,
    state_sizes,
)

FILES_SCRIPT = '''\
import os

def init():
    pass

def run(mini_batch):
    PRINT
    out = []
    for path in mini_batch:
        with open(path, encoding="utf-8") as f:
            out.append(f"{os.path.basename(path)} {f.readline().strip()}")
    return out
'''

CSV_SCRIPT = '''\
def run(mini_batch):
    return [f"{i} {t}" for i, t in zip(mini_batch["id"], mini_batch["text"], strict=True)]
'''


def files_script(prints: bool) -> str:
    """FILES_SCRIPT, optionally printing one line per run() call (as many scripts do)."""
    line = 'print(f"scored {len(mini_batch)} files")' if prints else "pass"
    return FILES_SCRIPT.replace("PRINT", line)


def file_rows(n: int) -> tuple[dict[str, bytes], list[str]]:
    """``n`` one-line files and the rows FILES_SCRIPT makes of them, in input order."""
    names = [f"item-{i:06d}.txt" for i in range(n)]
    return ({name: f"v{i}\n".encode() for i, name in enumerate(names)},
            [f"{name} v{i}" for i, name in enumerate(names)])


# --- (a) concurrent submits ---------------------------------------------------------------


def concurrent_submits(app: LoadApp, jobs: int, items: int,
                       timeout: float = 900.0) -> dict[str, Any]:
    """``jobs`` submits at once through the HTTP API (one thread each), shared inputs,
    distinct names, allow_reuse false; every job must complete with exact counts.

    Each submit carries a client request id, so a try whose connection failed is sent
    again without risking a second job (the count of such retries is reported)."""
    files, expected = file_rows(items)
    inputs = app.upload_files(files, "shared-inputs")
    code = app.upload_script(files_script(False))
    assert app.api is not None
    url, key = app.api.url, app.function_key
    barrier = threading.Barrier(jobs)
    latencies: list[float] = [0.0] * jobs
    ids: list[str] = [""] * jobs
    retries: Counter[str] = Counter()

    def submit(i: int) -> None:
        spec = app.spec(code, inputs, name=f"load-{i:03d}", mini_batch_size=1,
                        allow_reuse=False)
        client = ApiClient(url, key, timeout=300)
        request_id = f"bench-load-{uuid.uuid4().hex}"
        barrier.wait()
        started = time.perf_counter()
        for attempt in range(1, 21):
            try:
                ids[i] = str(client.submit(spec, client_request_id=request_id)["id"])
                break
            except (ApiError, OSError) as exc:
                retries[type(exc).__name__] += 1
                if attempt == 20:
                    raise LoadError(f"submit {i}: still failing after {attempt} tries: "
                                    f"{exc}") from exc
                time.sleep(min(2.0, 0.1 * attempt))
        latencies[i] = time.perf_counter() - started

    before = app.ops()
    started = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(submit, range(jobs)))
    accepted_s = time.perf_counter() - started
    recorded = [j for j in list_jobs(app.direct, limit=10 * jobs) if j.name.startswith("load-")]
    if len(set(ids)) != jobs or len(recorded) != jobs:
        raise LoadError(f"{jobs} submits gave {len(set(ids))} distinct job ids and "
                        f"{len(recorded)} recorded jobs")
    jobs_done = app.wait_all(ids, timeout)
    done_s = time.perf_counter() - started
    ops = app.ops() - before
    children: set[str] = set()
    for job in jobs_done.values():
        children.update(check_rows(app, job, expected, items)["workers"])
    lat = sorted(latencies)
    return {
        "jobs": jobs, "mini_batches_per_job": items, "items_per_job": items,
        "submit_latency_s": {f"p{p}": round(percentile(lat, p), 3) for p in (50, 90, 99)}
        | {"max": round(lat[-1], 3)},
        "submit_retries": dict(retries),
        "all_accepted_s": round(accepted_s, 2), "all_completed_s": round(done_s, 2),
        "jobs_per_s": round(jobs / done_s, 2),
        "mini_batches_per_s": round(jobs * items / done_s, 2),
        "scoring_processes": len(children),
        "ops_per_job": round(ops.total / jobs, 1),
        "ops_per_mini_batch": round(ops.total / (jobs * items), 2),
    }  # fmt: skip


# --- (b)/(c) one job of n mini-batches ------------------------------------------------------


def sized_job(app: LoadApp, n: int, kind: str = "files", timeout: float = 7200.0,
              idle_s: float = 10.0, progress: bool = False,
              prints: bool = False) -> dict[str, Any]:
    """One job of ``n`` mini-batches of one item; checks every row once, in order; counts
    the wire requests from submit until its outputs are written."""
    if kind == "files":
        files, expected = file_rows(n)
        started = time.perf_counter()
        inputs = app.upload_files(files, "inputs")
        code = app.upload_script(files_script(prints))
        spec = app.spec(code, inputs, name="load-big", mini_batch_size=1, allow_reuse=False)
    elif kind == "csv":
        expected = [f"{i} r{i}" for i in range(n)]
        body = "id,text\n" + "".join(f"{i},r{i}\n" for i in range(n))
        started = time.perf_counter()
        path = app.upload_files({"rows.csv": body.encode()}, "inputs")
        code = app.upload_script(CSV_SCRIPT)
        spec = app.spec(code, {"path": f"{path}/rows.csv", "type": "tabular",
                               "format": "csv"},
                        name="load-big", mini_batch_size="1 rows", allow_reuse=False)
    else:
        raise LoadError(f"input kind: got {kind!r}, expected files or csv")
    upload_s = time.perf_counter() - started
    assert app.api is not None
    before = app.ops()
    started = time.perf_counter()
    job_id = str(app.api.submit(spec)["id"])
    job = app.wait_all([job_id], timeout, progress=progress)[job_id]
    job_s = time.perf_counter() - started
    ops = app.ops() - before
    phases = _phases(app.seen[job_id], started, started + job_s)
    # What the runner does while idle (polling queues, the inbox, timers), per second.
    idle_before = app.ops()
    time.sleep(idle_s)
    idle = app.ops() - idle_before
    started = time.perf_counter()
    figures = check_rows(app, job, expected, n)
    check_s = time.perf_counter() - started
    return {
        "mini_batches": n, "input": kind, "script_prints": prints, "upload_s": round(upload_s, 2),
        "job_s": round(job_s, 2), "mini_batches_per_s": round(n / job_s, 2),
        "phases_s": phases,
        "ops": ops.to_dict(), "ops_total": ops.total,
        "ops_per_mini_batch": round(ops.total / n, 3),
        "idle_ops_per_s": round(idle.total / idle_s, 2),
        "progress_read_s": figures["progress_read_s"], "check_s": round(check_s, 2),
        "scoring_processes": len(figures["workers"]),
        "state": state_sizes(app, job_id, figures),
    }  # fmt: skip


def _phases(seen: dict[str, float], submitted: float, done: float) -> dict[str, float | None]:
    """Seconds until running, running, and finalizing (as seen by 0.5 s polls)."""
    running, final = seen.get("running"), seen.get("finalizing")
    return {
        "until_running": None if running is None else round(running - submitted, 1),
        "running": None if running is None or final is None else round(final - running, 1),
        "finalizing": None if final is None else round(done - final, 1),
    }


# --- report -------------------------------------------------------------------------------


def print_report(result: dict[str, Any]) -> None:
    """The figures as plain tables."""
    c = result.get("concurrent")
    if c:
        lat = c["submit_latency_s"]
        print(f"(a) {c['jobs']} concurrent submits via POST /api/jobs, {c['items_per_job']} "
              f"items / mini-batches each: all completed, counts and rows exact")
        print(f"    submit latency s (first try to 202): p50 {lat['p50']:.3f}  p90 "
              f"{lat['p90']:.3f}  p99 {lat['p99']:.3f}  max {lat['max']:.3f}; tries that "
              f"failed and were sent again (same client request id): "
              f"{sum(c['submit_retries'].values())} {c['submit_retries'] or ''}")
        print(f"    all accepted after {c['all_accepted_s']:.1f}s, all completed after "
              f"{c['all_completed_s']:.1f}s ({c['jobs_per_s']:.2f} jobs/s, "
              f"{c['mini_batches_per_s']:.1f} mini-batches/s); {c['ops_per_job']:.0f} storage "
              f"ops per job ({c['ops_per_mini_batch']:.1f} per mini-batch); scoring child "
              f"processes started: {c['scoring_processes']} for "
              f"{c['jobs'] * c['mini_batches_per_job']} mini-batches")
    sizes = result.get("sizes", [])
    if not sizes:
        return
    base = sizes[0]
    print(f"\n(b)+(c) one job per size, one item per mini-batch ({base['input']} input"
          f"{', script prints a line per run()' if base.get('script_prints') else ''}), "
          "every row once and in order; storage ops from submit to outputs written:")
    header = (f"{'mini-batches':>12}{'job s':>9}{'mb/s':>7}{'ops':>9}{'ops/mb':>8}"
              f"{'vs first':>9}{'blob/mb':>8}{'queue/mb':>9}{'table/mb':>9}"
              f"{'state B/mb':>11}{'output B/mb':>12}{'sent B/mb':>10}")
    print(header)
    for s in sizes:
        per = {svc: s["ops"]["by_service"].get(svc, 0) / s["mini_batches"]
               for svc in ("blob", "queue", "table")}
        st = s["state"]
        print(f"{s['mini_batches']:>12}{s['job_s']:>9.1f}{s['mini_batches_per_s']:>7.1f}"
              f"{s['ops_total']:>9}{s['ops_per_mini_batch']:>8.2f}"
              f"{s['ops_per_mini_batch'] / base['ops_per_mini_batch']:>8.2f}x"
              f"{per['blob']:>8.2f}{per['queue']:>9.2f}{per['table']:>9.2f}"
              f"{st['state_bytes_per_mb']:>11.0f}{st['output_bytes_per_mb']:>12.0f}"
              f"{sum(s['ops']['sent_bytes'].values()) / s['mini_batches']:>10.0f}")
    for a, b in itertools.pairwise(sizes):
        marginal = (b["ops_total"] - a["ops_total"]) / (b["mini_batches"] - a["mini_batches"])
        print(f"    {a['mini_batches']} -> {b['mini_batches']}: ops x"
              f"{b['ops_total'] / a['ops_total']:.2f} for mini-batches x"
              f"{b['mini_batches'] / a['mini_batches']:.2f}; marginal {marginal:.2f} ops/mb")
    print("\nops per mini-batch by service, method and what (size columns):")
    keys = sorted({k for s in sizes for k in s["ops"]["detail"]})
    print(f"{'':<44}" + "".join(f"{s['mini_batches']:>10}" for s in sizes))
    for k in keys:
        print(f"{k:<44}" + "".join(
            f"{s['ops']['detail'].get(k, 0) / s['mini_batches']:>10.3f}" for s in sizes))
    print("\nstate and output per size:")
    for s in sizes:
        st = s["state"]
        print(f"  {s['mini_batches']:>6} mb: table rows {st['table_rows']} "
              f"({st['table_bytes']} B), manifests {st['manifests']} ({st['manifest_bytes']} B), "
              f"result parts {st['parts']} ({st['part_bytes']} B), durable "
              f"{st['durable_bytes']} B; output {st['output_bytes']} B (append_row "
              f"{st['append_row_bytes']} B, logs {st['log_bytes']} B); mini-batch table "
              f"scans {s['ops']['scans']} ({s['ops']['scan_pages']} pages); one progress "
              f"read {s['progress_read_s']:.2f}s; idle {s['idle_ops_per_s']:.1f} ops/s; "
              f"phases s {s['phases_s']}")


def run_bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start Azurite and a counting proxy; run the concurrent submits, then each size."""
    result: dict[str, Any] = {"cpu_count": os.cpu_count(), "workers": args.workers,
                              "poll_s": args.poll_s, "queue_window": args.queue_window}
    with Azurite() as azurite, counting_proxy(azurite) as proxy:
        if args.submits:
            app = make_app(azurite, proxy, work / "concurrent", workers=args.workers,
                           poll_s=args.poll_s)
            try:
                result["concurrent"] = concurrent_submits(app, args.submits, args.items)
            finally:
                app.stop()
            print_report({"concurrent": result["concurrent"]})
        result["sizes"] = []
        for n in [*args.sizes, args.mini_batches]:
            app = make_app(azurite, proxy, work / f"size{n}", workers=args.workers,
                           poll_s=args.poll_s, queue_window=args.queue_window)
            try:
                print(f"... job of {n} mini-batches", flush=True)
                size = sized_job(app, n, args.input, progress=True, prints=args.script_prints)
            finally:
                app.stop()
            result["sizes"].append(size)
            # Each size's figures as soon as it is done, so a long run stopped later
            # still leaves them (the full tables come at the end).
            print(f"    done: {_summary(size)}", flush=True)
            if args.json is not None:
                args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _summary(s: dict[str, Any]) -> str:
    n, st, per = s["mini_batches"], s["state"], s["ops"]["by_service"]
    return (f"{n} mini-batches, exact, in {s['job_s']:.0f}s ({s['mini_batches_per_s']:.1f}/s); "
            f"{s['ops_total']} ops = {s['ops_per_mini_batch']:.2f}/mb (blob "
            f"{per.get('blob', 0) / n:.2f}, queue {per.get('queue', 0) / n:.2f}, table "
            f"{per.get('table', 0) / n:.2f}); state {st['state_bytes_per_mb']:.0f} B/mb, "
            f"output {st['output_bytes_per_mb']:.0f} B/mb, sent "
            f"{sum(s['ops']['sent_bytes'].values()) / n:.0f} B/mb; {s['ops']['scans']} table "
            f"scans ({s['ops']['scan_pages']} pages); phases s {s['phases_s']}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=100, help="concurrent jobs (0: skip)")
    parser.add_argument("--items", type=int, default=3, help="mini-batches per concurrent job")
    parser.add_argument("--mini-batches", type=int, default=20_000, help="the big job's size")
    parser.add_argument("--sizes", default="500,2000",
                        help="smaller sizes measured first (comma-separated, '' for none)")
    parser.add_argument("--input", choices=("files", "csv"), default="files",
                        help="files: one tiny file per mini-batch; csv: one CSV, '1 rows'")
    parser.add_argument("--script-prints", action="store_true",
                        help="the files script prints a line per run() (worker log grows)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--poll-s", type=float, default=5.0, help="orchestrator poll interval")
    parser.add_argument("--queue-window", type=int, default=2000,
                        help="BATCHFX_QUEUE_WINDOW of the sized jobs' app")
    parser.add_argument("--queue-probe", default="",
                        help="also time one receive+delete at these queue depths on a bare "
                             "Azurite (comma-separated, e.g. 500,5000,20000)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    # Under nohup/&, SIGINT is ignored: SIGTERM stops the bench with its clean-up (runner,
    # proxy, Azurite), as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    args.sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    args.queue_probe = [int(s) for s in args.queue_probe.split(",") if s.strip()]
    if args.mini_batches < 1 or any(s < 1 for s in args.sizes):
        parser.error("sizes must be positive numbers of mini-batches")
    with tempfile.TemporaryDirectory(prefix="batchfx-load-") as work:
        try:
            result = run_bench(args, Path(work))
        except LoadError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
    print()
    print_report({"sizes": result["sizes"]})
    if args.queue_probe:
        result["queue_probe_ms"] = queue_depth_probe(args.queue_probe)
        print("\nAzurite alone, one receive + delete (ms) at queue depth: " + ", ".join(
            f"{d}: {ms}" for d, ms in result["queue_probe_ms"].items()))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
