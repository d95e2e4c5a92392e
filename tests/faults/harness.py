"""An isolated batchfx app for fault tests, and the exactness checks every test ends with.

Unlike tests/e2e's App, the app may talk to storage through a fault proxy while the test
sets up and verifies through a direct connection, and the runner's worker count and
message lease are chosen per test.
"""

from __future__ import annotations

import csv
import io
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from app_settings import app_settings

from batchfx.cli.client import ApiClient, ApiError
from batchfx.core.records import JobRecord
from batchfx.core.settings import Settings
from batchfx.local.runner import LocalRunner
from batchfx.services.jobs import get_job, job_progress, job_view
from batchfx.storage import Storage

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
FAULT_SCRIPTS = Path(__file__).resolve().parent / "scripts"
FINAL = {"completed", "failed", "aborted", "canceled"}


# Storage retries 0.05, 0.1, 0.2, ... s apart (production: 1, 2, 4, ... s): a suite that
# injects hundreds of 503s must not sleep through them. The runner hands these settings
# to its worker processes (Settings.to_env), so every storage client of the app uses them.
FAST_RETRY_BACKOFF_S = 0.05
FAST_RETRY_BACKOFF_MAX_S = 1.0


def settings_for(connection_string: str, name: str, work_dir: Path, *,
                 poll_s: float = 1.0) -> Settings:
    """Settings of an app with its own container, queue and tables, and fast retries."""
    return app_settings(connection_string, name, work_dir, poll_interval_s=poll_s,
                        lease_margin_s=2.0, storage_retry_backoff_s=FAST_RETRY_BACKOFF_S,
                        storage_retry_backoff_max_s=FAST_RETRY_BACKOFF_MAX_S)


@dataclass
class FaultApp:
    """One isolated app: ``settings`` as the app sees storage, ``direct`` for the test."""

    settings: Settings
    direct: Storage
    tmp: Path
    workers: int = 2
    message_lease_s: float = 3.0
    runner: LocalRunner | None = None
    runners: list[LocalRunner] = field(default_factory=list)

    # -- runner ------------------------------------------------------------------------

    def start(self) -> LocalRunner:
        """Start (or start again) a local runner on this app's storage."""
        runner = LocalRunner(self.settings, workers=self.workers,
                             message_lease_s=self.message_lease_s)
        self.runners.append(runner)
        runner.start()
        self.runner = runner
        return runner

    def stop(self) -> None:
        """Stop the current runner (workers finish their message first)."""
        if self.runner is not None:
            self.runner.stop()
            self.runner = None

    def close(self) -> None:
        """Stop every runner this app started."""
        for runner in self.runners:
            runner.stop()
        self.runner = None

    @property
    def api(self) -> ApiClient:
        assert self.runner is not None, "no runner started"
        return ApiClient(self.runner.url, self.runner.function_key, timeout=30)

    # -- inputs and specs --------------------------------------------------------------

    def upload_inputs(self, n: int, prefix: str = "inputs") -> tuple[str, list[str]]:
        """Upload ``n`` one-line files; returns their folder and the rows echo.py makes."""
        container = self.settings.jobs_container
        self.direct.blobs.ensure_container(container)
        names = [f"item-{i:05d}.txt" for i in range(n)]

        def put(i: int) -> None:
            self.direct.blobs.upload(container, f"{prefix}/{names[i]}", f"v{i}\n".encode())

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, range(n)))
        return f"{container}/{prefix}", [f"{names[i]} v{i}" for i in range(n)]

    def upload_script(self, path: Path, folder: str = "code") -> str:
        """Upload a scoring script as ``score.py``; returns its folder."""
        container = self.settings.jobs_container
        self.direct.blobs.ensure_container(container)
        self.direct.blobs.upload(container, f"{folder}/score.py", path.read_bytes())
        return f"{container}/{folder}"

    def spec(self, script: Path, inputs: str, **overrides: Any) -> dict[str, Any]:
        """A job spec: one file per mini-batch, scored by ``script``."""
        spec: dict[str, Any] = {
            "name": "faults-job",
            "entry_script": "score.py",
            "source_directory": self.upload_script(script),
            "inputs": inputs,
            "output": f"{self.settings.jobs_container}-out/results",
            "mini_batch_size": 1,
            "run_invocation_timeout": 10,
            "allow_reuse": False,
        }
        spec.update(overrides)
        return spec

    def submit(self, spec: dict[str, Any], *, tries: int = 10) -> str:
        """Submit through the HTTP function with a client request id, retrying 5xx answers."""
        request_id = f"faults-{uuid.uuid4().hex}"
        for attempt in range(1, tries + 1):
            try:
                return str(self.api.submit(spec, client_request_id=request_id)["id"])
            except ApiError:
                if attempt == tries:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    # -- watching ----------------------------------------------------------------------

    def view(self, job_id: str) -> dict[str, Any]:
        """The job as GET /api/jobs/{id} shows it, read directly (never through faults)."""
        job = get_job(self.direct, job_id)
        return job_view(job, job_progress(self.direct, job))

    def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        """Poll until the job ended and its outputs are written; a hang fails loudly."""
        self.wait_until(job_id, timeout, lambda job: job.state.value in FINAL
                        and job.outcome.outputs_ready)
        return self.view(job_id)

    def wait_until(self, job_id: str, timeout: float, done: Callable[[JobRecord], bool],
                   *, stall_s: float = 300.0) -> JobRecord:
        """Poll the job row until ``done(job)``; fail, with the job's view, once the job
        is hung: when its orchestration failed, when nothing moved (no mini-batch finished,
        no change of state) for ``stall_s`` seconds, or past ``timeout`` while nothing
        moved for a minute. A job that keeps moving on a slow, busy machine is waited for,
        up to three times ``timeout`` (so that a run that never ends still fails).

        ``stall_s`` is generous: a long-lived Azurite answers nothing while it sweeps
        deleted blobs (115 s seen). The job row is read every 0.5 s; the mini-batch rows
        only every 10 s (summing thousands of them every poll would load Azurite as much
        as the workers do).
        """
        started = time.monotonic()
        finished, moved, counted, state = -1, started, 0.0, ""
        while True:
            job = get_job(self.direct, job_id)
            if done(job):
                return job
            now = time.monotonic()
            status = self.durable_status(job_id)
            if status and status["runtimeStatus"] in ("Failed", "Terminated") \
                    and not job.state.is_final:
                self._hung(job_id, "its orchestration ended but the job did not: it would "
                                   f"stay {job.state.value} forever")
            if job.state.value != state:
                state, moved = job.state.value, now
            if job.state.value == "running" and now - counted >= 10.0:
                counted = now
                progress = job_progress(self.direct, job)
                if progress.mini_batches_done != finished:
                    finished, moved = progress.mini_batches_done, now
            if now - moved > stall_s:
                self._hung(job_id, f"nothing moved for {stall_s:.0f}s ({state})")
            if now - started > timeout and now - moved > 60.0:
                self._hung(job_id, f"not done after {timeout:.0f}s, and nothing moved for "
                                   f"{now - moved:.0f}s")
            if now - started > 3 * timeout:
                self._hung(job_id, f"still moving, but not done after {3 * timeout:.0f}s")
            time.sleep(0.5)

    def _hung(self, job_id: str, why: str) -> NoReturn:
        raise AssertionError(
            f"job {job_id} hung: {why}\nview: {self.view(job_id)}\n"
            f"durable: {self.durable_status(job_id)}\n"
            f"unfinished mini-batches: {self.unfinished_rows(job_id)[:5]}")

    def wait_progress(self, job_id: str, timeout: float, succeeded: int) -> dict[str, Any]:
        """Poll the full view (every 1 s) until ``succeeded`` mini-batches succeeded; past
        ``timeout`` it fails only once none succeeded for a minute (up to 3 x ``timeout``)."""
        started = time.monotonic()
        seen, moved = -1, started
        while True:
            view = self.view(job_id)
            now_done = view["mini_batches"]["succeeded"]
            if now_done >= succeeded or view["state"] in FINAL:
                return view
            now = time.monotonic()
            if now_done != seen:
                seen, moved = now_done, now
            elapsed = now - started
            if (elapsed > timeout and now - moved > 60.0) or elapsed > 3 * timeout:
                self._hung(job_id, f"below {succeeded} mini-batches after {elapsed:.0f}s")
            time.sleep(1.0)

    def durable_status(self, job_id: str) -> dict[str, Any] | None:
        """The orchestration's status (runtimeStatus, output), if a runner is up."""
        if self.runner is None or self.runner.durable is None:
            return None
        status = self.runner.durable.get_status(job_id)
        if status is None:
            return None
        return {k: status.get(k) for k in ("runtimeStatus", "output", "lastUpdatedTime")}

    def unfinished_rows(self, job_id: str) -> list[dict[str, Any]]:
        """Mini-batch rows that are not final."""
        rows = self.direct.tables.query(self.settings.minibatches_table, job_id)
        return [{k: r.get(k) for k in ("RowKey", "status", "tries", "worker", "lease_until",
                                       "message_id")}
                for r in rows if r.get("status") not in ("succeeded", "failed")]

    # -- checking ----------------------------------------------------------------------

    def outputs(self, view: dict[str, Any]) -> dict[str, str]:
        """The job's output files (name → text), read directly."""
        container, _, prefix = view["output"]["location"].partition("/")
        out = {}
        for ref in self.direct.blobs.list_names(container, f"{prefix}/"):
            name = ref.name[len(prefix) + 1:]
            if name.endswith((".txt", ".csv", ".json")) and not name.startswith("logs/"):
                out[name] = self.direct.blobs.download(container, ref.name).decode()
        return out

    def check_exact(self, view: dict[str, Any], expected: list[str]) -> Exactness:
        """Assert completed, exact counts, every row once in input order, one report line per
        mini-batch; returns the figures."""
        n = len(expected)
        assert view["state"] == "completed", f"job ended {view['state']}: {view}"
        assert view["items"] == {"total": n, "succeeded": n, "failed": 0, "pending": 0}, view
        batches = view["mini_batches"]
        assert (batches["total"], batches["succeeded"], batches["failed"]) == (n, n, 0), view
        out = self.outputs(view)
        rows = [line for line in out["parallel_run_step.txt"].splitlines() if line.strip()]
        seen = Counter(rows)
        duplicates = {row: c for row, c in seen.items() if c > 1}
        missing = sorted(set(expected) - set(seen))
        unexpected = sorted(set(seen) - set(expected))
        figures = Exactness(rows=len(rows), duplicates=sum(c - 1 for c in duplicates.values()),
                            missing=len(missing), unexpected=len(unexpected))
        assert not duplicates, f"{figures}: rows written twice: {list(duplicates.items())[:10]}"
        assert not missing, f"{figures}: rows missing: {missing[:10]}"
        assert not unexpected, f"{figures}: rows nobody asked for: {unexpected[:10]}"
        assert rows == expected, "rows are all there once, but not in input order"
        report = list(csv.DictReader(io.StringIO(out["processed_mini-batches.csv"])))
        ids = [r["mini_batch_id"] for r in report]
        assert len(report) == n, f"processed_mini-batches.csv has {len(report)} lines for {n}"
        assert len(set(ids)) == n, "processed_mini-batches.csv repeats a mini-batch"
        assert {r["status"] for r in report} == {"succeeded"}, Counter(r["status"] for r in report)
        assert "status: completed" in out["job_result.txt"]
        figures.max_tries = max(int(r["tries"]) for r in report)
        figures.retried = sum(1 for r in report if int(r["tries"]) > 1)
        return figures


@dataclass
class Exactness:
    """What the output check found."""

    rows: int
    duplicates: int
    missing: int
    unexpected: int
    max_tries: int = 0
    retried: int = 0


def ended(view: dict[str, Any]) -> bool:
    """The job is over and its reports are written."""
    return view["state"] in FINAL and bool(view["outputs_ready"])


class WorkerKiller:
    """SIGKILLs a random worker process of the app's current runner every 1 to 2 s."""

    def __init__(self, app: FaultApp, *, seed: int, every: tuple[float, float] = (1.0, 2.0)
                 ) -> None:
        self._app = app
        self._random = random.Random(seed)
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-killer", daemon=True)
        self.kills = 0

    def __enter__(self) -> WorkerKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import os

        while not self._stop.wait(self._random.uniform(*self._every)):
            runner = self._app.runner
            pids = runner.worker_pids if runner is not None else []
            if pids:
                try:
                    os.kill(self._random.choice(pids), signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    pass
