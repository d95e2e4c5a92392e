"""Helpers of bench_load.py (and tests/e2e/test_load_e2e.py): a request-counting proxy in
front of Azurite, an isolated app on the local runner behind it, and the exactness checks.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from batchfx.cli.client import ApiClient  # noqa: E402
from batchfx.core.records import JobRecord  # noqa: E402
from batchfx.core.settings import Settings  # noqa: E402
from batchfx.local.azurite import Azurite  # noqa: E402
from batchfx.local.runner import LocalRunner  # noqa: E402
from batchfx.services.jobs import get_job, job_progress, job_view  # noqa: E402
from batchfx.storage import Storage  # noqa: E402
from tests.faults.proxy import FaultProxy  # noqa: E402

FINAL = {"completed", "failed", "aborted", "canceled"}
_TABLE_KEY = re.compile(r"^([A-Za-z0-9]+)\((.*)\)$")


class LoadError(Exception):
    """A job did not complete exactly: the bench reports it and exits 1."""


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# --- counting -------------------------------------------------------------------------------


def classify(service: str, method: str, target: str) -> str:
    """``"<service> <method> <what>"`` of one request, from its path and query."""
    parts = urlsplit(target)
    segments = [unquote(s) for s in parts.path.split("/") if s][1:]  # drop the account
    query = parts.query
    if service == "table":
        name = segments[0] if segments else ""
        match = _TABLE_KEY.match(name)
        table = match.group(1) if match else name
        if table == "Tables":
            return f"table {method} create/list tables"
        kind = "mini-batch" if table.endswith("mb") else "jobs"
        if method == "GET" and match and not match.group(2):
            return f"table GET {kind} scan page"
        what = {"GET": "get", "POST": "insert", "PUT": "replace", "PATCH": "merge",
                "MERGE": "merge", "DELETE": "delete"}.get(method, method)
        return f"table {method} {kind} row {what}"
    if service == "queue":
        queue = segments[0] if segments else ""
        which = "poison " if queue.endswith("-poison") else ""
        if len(segments) < 2:
            return f"queue {method} {which}queue admin"
        what = {"POST": "send", "GET": "receive", "PUT": "update (lease/visibility)",
                "DELETE": "delete"}.get(method, method)
        return f"queue {method} {which}message {what}"
    container = segments[0] if segments else ""
    name = "/".join(segments[1:])
    if "restype=container" in query:
        return f"blob {method} {'list' if 'comp=list' in query else 'container'}" + (
            f" {_blob_role(container, name)}" if "comp=list" in query else "")
    block = " block" if "comp=block" in query else ""
    return f"blob {method} {_blob_role(container, name)}{block}"


def _blob_role(container: str, name: str) -> str:
    if container.endswith("-durable"):
        return "durable state"
    if container.endswith("-out"):
        return "output logs" if "/logs/" in name else "output files"
    if container.endswith("-inbox"):
        return "inbox"
    if "/manifests/" in name:
        return "manifests"
    if name.endswith("/progress.json"):
        return "progress tally"
    if "/results/" in name:
        return "result parts"
    return "inputs+code" if name else "jobs container"


class CountingProxy(FaultProxy):
    """The fault proxy, with no faults, counting requests per service, method and what,
    and the bytes sent (request line, headers and body)."""

    def __init__(self, upstream_ports: dict[str, int]) -> None:
        super().__init__(upstream_ports, seed=0)
        self.detail: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.scans = 0

    def _choose(self, service: str, request: Any) -> str | None:
        kind = super()._choose(service, request)
        label = classify(service, request.method, request.target)
        scan_start = label.endswith("scan page") and "NextRowKey" not in request.target
        with self._lock:
            self.detail[label] += 1
            self.sent[service] += len(request.raw)
            self.scans += scan_start
        return kind

    def snapshot(self) -> Ops:
        """The counters now."""
        with self._lock:
            return Ops(Counter(self.detail), Counter(self.sent), self.scans)


@contextlib.contextmanager
def counting_proxy(azurite: Azurite) -> Iterator[CountingProxy]:
    """A started CountingProxy in front of ``azurite``."""
    proxy = CountingProxy({"blob": azurite.blob_port, "queue": azurite.queue_port,
                           "table": azurite.table_port})
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@dataclass
class Ops:
    """Wire requests counted between two snapshots."""

    detail: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    scans: int = 0

    def __sub__(self, other: Ops) -> Ops:
        return Ops(self.detail - other.detail, self.sent - other.sent, self.scans - other.scans)

    @property
    def total(self) -> int:
        return sum(self.detail.values())

    def by_service(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for label, n in self.detail.items():
            out[label.split(" ", 1)[0]] += n
        return dict(out)

    def to_dict(self) -> dict[str, Any]:
        pages = sum(n for k, n in self.detail.items() if k.endswith("scan page"))
        return {"total": self.total, "by_service": self.by_service(),
                "detail": dict(sorted(self.detail.items())), "sent_bytes": dict(self.sent),
                "scans": self.scans, "scan_pages": pages}


# --- an isolated app behind the proxy ------------------------------------------------------


@dataclass
class LoadApp:
    """An app with its own container, queue and tables: the runner talks through the
    proxy, the bench sets up and checks through ``direct`` (not counted)."""

    settings: Settings
    direct: Storage
    proxy: CountingProxy
    runner: LocalRunner
    api: ApiClient | None = None
    # job id -> state -> when the bench first saw the job in it (time.monotonic())
    seen: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def function_key(self) -> str:
        return self.runner.function_key

    def ops(self) -> Ops:
        return self.proxy.snapshot()

    def upload_files(self, files: dict[str, bytes], prefix: str) -> str:
        """Upload ``files`` (name → bytes) under ``prefix``; returns ``container/prefix``."""
        container = self.settings.jobs_container
        pool = ThreadPoolExecutor(16)
        try:
            list(pool.map(lambda item: self.direct.blobs.upload(
                container, f"{prefix}/{item[0]}", item[1]), files.items()))
        finally:
            pool.shutdown(cancel_futures=True)  # an interrupt does not wait for the rest
        return f"{container}/{prefix}"

    def upload_script(self, text: str) -> str:
        """Upload a scoring script as ``code/score.py``; returns its folder."""
        return self.upload_files({"score.py": text.encode()}, "code")

    def spec(self, code: str, inputs: Any, **overrides: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": "load-job", "entry_script": "score.py", "source_directory": code,
            "inputs": inputs, "output": f"{self.settings.jobs_container}-out/results",
            "run_invocation_timeout": 60,
        }
        return spec | overrides

    def wait_all(self, ids: list[str], timeout: float, *,
                 progress: bool = False) -> dict[str, JobRecord]:
        """Poll the job rows (directly) until every job ended with its outputs written."""
        begun = shown = time.monotonic()
        deadline = begun + timeout
        pending, done = list(ids), {}
        while pending:
            for job_id in list(pending):
                job = get_job(self.direct, job_id)
                self.seen.setdefault(job_id, {}).setdefault(job.state.value, time.monotonic())
                if job.state.value in FINAL and job.outcome.outputs_ready:
                    done[job_id] = job
                    pending.remove(job_id)
            if not pending:
                break
            if time.monotonic() > deadline:
                states = Counter(get_job(self.direct, i).state.value for i in pending)
                raise LoadError(f"{len(pending)} of {len(ids)} jobs not done after "
                                f"{timeout:.0f}s: {dict(states)}")
            if progress and time.monotonic() - shown > 30:
                shown = time.monotonic()
                print(f"    {shown - begun:6.0f}s "
                      f"{_overview(self.direct, get_job(self.direct, pending[0]))}", flush=True)
            time.sleep(0.5)
        return done

    def stop(self) -> None:
        self.runner.stop()


def _overview(direct: Storage, job: JobRecord) -> str:
    """One line from the progress_overview.json the orchestrator writes each poll."""
    container, _, prefix = job.output_location.partition("/")
    try:
        view = json.loads(direct.blobs.download(container, f"{prefix}/progress_overview.json"))
    except Exception:
        return f"{job.state.value}, no overview yet"
    batches = view.get("mini_batches", {})
    return (f"{view['state']}: {batches.get('succeeded')}/{batches.get('total')} mini-batches, "
            f"{view.get('items_per_second')} items/s, eta {view.get('eta_seconds')}s")


def make_app(azurite: Azurite, proxy: CountingProxy, work: Path, *, workers: int = 2,
             poll_s: float = 5.0, queue_window: int = 2000) -> LoadApp:
    """A started app with unique names whose runner reaches storage through ``proxy``."""
    name = "ld" + uuid.uuid4().hex[:10]

    def settings(connection_string: str) -> Settings:
        return Settings(connection_string=connection_string, jobs_container=name,
                        queue_name=name, jobs_table=f"{name}jobs",
                        minibatches_table=f"{name}mb", inbox_container=f"{name}-inbox",
                        poll_interval_s=poll_s, lease_margin_s=10.0,
                        work_dir=str(work / "work"), queue_window=queue_window)

    direct = Storage.from_settings(settings(azurite.connection_string))
    direct.ensure_resources()
    runner = LocalRunner(settings(proxy.connection_string), workers=workers)
    runner.start()
    app = LoadApp(settings(proxy.connection_string), direct, proxy, runner)
    app.api = ApiClient(runner.url, runner.function_key, timeout=300)
    return app


def queue_depth_probe(depths: list[int], probes: int = 50) -> dict[int, float]:
    """Milliseconds of one receive + delete on a queue holding ``depth`` messages, on a
    fresh Azurite per depth with nothing else on it: what queue depth alone costs."""
    out = {}
    for depth in depths:
        with Azurite() as azurite:
            out[depth] = _probe(azurite, depth, probes)
    return out


def _probe(azurite: Azurite, depth: int, probes: int) -> float:
    name = "probe" + uuid.uuid4().hex[:8]
    queues = Storage.from_settings(Settings(connection_string=azurite.connection_string,
                                            queue_name=name)).queues
    queues.ensure_queue(name)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: queues.send(name, f"m{i}"), range(depth + probes)))
    started, done = time.perf_counter(), 0
    while done < probes:
        for m in queues.receive(name, visibility_timeout=300):
            queues.delete(name, m.id, m.pop_receipt)
            done += 1
    return round((time.perf_counter() - started) * 1000 / probes, 1)


# --- checking -------------------------------------------------------------------------------


def check_rows(app: LoadApp, job: JobRecord, expected: list[str],
               mini_batches: int) -> dict[str, Any]:
    """Completed, exact counts, every row once in input order, one report line per
    mini-batch; raises LoadError naming what is wrong. Returns a few figures."""
    started = time.perf_counter()
    view = job_view(job, job_progress(app.direct, job))
    read_s = time.perf_counter() - started
    n, jid = len(expected), job.job_id
    if view["state"] != "completed":
        raise LoadError(f"job {jid} ended {view['state']}: {view.get('reason')}")
    if view["items"] != {"total": n, "succeeded": n, "failed": 0, "pending": 0}:
        raise LoadError(f"job {jid}: items {view['items']}, expected {n} succeeded")
    got = view["mini_batches"]
    if (got["total"], got["succeeded"], got["failed"]) != (mini_batches, mini_batches, 0):
        raise LoadError(f"job {jid}: mini-batches {got}, expected {mini_batches} succeeded")
    if view["rows"] != n:
        raise LoadError(f"job {jid}: {view['rows']} rows counted, expected {n}")
    out = _outputs(app.direct, job)
    rows = [line for line in out["parallel_run_step.txt"].splitlines() if line.strip()]
    if rows != expected:
        seen = Counter(rows)
        raise LoadError(
            f"job {jid}: {len(rows)} rows for {n}: "
            f"{sum(c - 1 for c in seen.values() if c > 1)} duplicated, "
            f"{len(set(expected) - set(seen))} missing, "
            f"{len(set(seen) - set(expected))} unexpected"
            + ("; all there once but out of order" if sorted(rows) == sorted(expected) else ""))
    report = list(csv.DictReader(io.StringIO(out["processed_mini-batches.csv"])))
    ids = {r["mini_batch_id"] for r in report}
    statuses = Counter(r["status"] for r in report)
    if len(report) != mini_batches or len(ids) != mini_batches or set(statuses) != {
            "succeeded"}:
        raise LoadError(f"job {jid}: processed_mini-batches.csv has {len(report)} lines, "
                        f"{len(ids)} distinct, statuses {dict(statuses)}")
    if "status: completed" not in out["job_result.txt"]:
        raise LoadError(f"job {jid}: job_result.txt says {out['job_result.txt'][:200]!r}")
    return {"progress_read_s": round(read_s, 3), "table_rows": mini_batches,
            "workers": sorted({r["worker"] for r in report})}


def _outputs(direct: Storage, job: JobRecord) -> dict[str, str]:
    container, _, prefix = job.output_location.partition("/")
    names = ("parallel_run_step.txt", "processed_mini-batches.csv", "job_result.txt")
    return {name: direct.blobs.download(container, f"{prefix}/{name}").decode()
            for name in names}


def state_sizes(app: LoadApp, job_id: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Rows and bytes a job leaves: its table rows, its jobs-container blobs (manifests,
    result parts), the durable instance, and its outputs."""
    direct, settings = app.direct, app.settings
    job = get_job(direct, job_id)
    rows = list(direct.tables.query(settings.minibatches_table, job_id))
    table_bytes = sum(len(json.dumps(r, default=str)) for r in rows)
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for ref in direct.blobs.list_names(settings.jobs_container, f"jobs/{job_id}/"):
        what = ("manifest" if "/manifests/" in ref.name else
                "progress" if ref.name.endswith("/progress.json") else "part")
        sizes[what] += ref.size
        counts[what] += 1
    durable = sum(r.size for r in direct.blobs.list_names(
        f"{settings.jobs_container}-durable", ""))
    container, _, prefix = job.output_location.partition("/")
    output = list(direct.blobs.list_names(container, f"{prefix}/"))
    out_bytes = sum(r.size for r in output)
    m = max(1, figures["table_rows"])
    state = table_bytes + sizes["manifest"] + sizes["part"] + sizes["progress"] + durable
    return {
        "table_rows": len(rows), "table_bytes": table_bytes,
        "manifests": counts["manifest"], "manifest_bytes": sizes["manifest"],
        "parts": counts["part"], "part_bytes": sizes["part"], "durable_bytes": durable,
        "progress_bytes": sizes["progress"],
        "output_bytes": out_bytes,
        "append_row_bytes": sum(r.size for r in output
                                if r.name.endswith("/parallel_run_step.txt")),
        "log_bytes": sum(r.size for r in output if "/logs/" in r.name),
        "state_bytes_per_mb": round(state / m, 1), "output_bytes_per_mb": round(out_bytes / m, 1),
    }  # fmt: skip
