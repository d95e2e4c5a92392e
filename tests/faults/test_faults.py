"""Fault injection: killed workers, restarted runner and Azurite, expired leases, storage
errors on the wire. Each job must complete with exact counts, every row once, one report
line per mini-batch, and never hang (every wait is bounded)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import FAULT_SCRIPTS, SCRIPTS, FaultApp, WorkerKiller
from proxy import FaultProxy

from batchfx.local.azurite import Azurite

Figures = Callable[..., None]


def _restarts(app: FaultApp) -> int:
    return sum(r.worker_restarts for r in app.runners)


@pytest.mark.timeout(2700)  # a cap for a run that never ends: the waits fail first
def test_2000_mini_batches_exact_under_worker_kills_and_storage_faults(
        make_app: Callable[..., FaultApp], fault_proxy: FaultProxy, figures: Figures) -> None:
    """(a)+(e): 2,000 one-file mini-batches on 3 workers. Every storage call of the app
    (workers, orchestrator, HTTP API, Durable store) goes through the fault proxy, which
    answers 4% of blob, queue and table requests with 503 ServerBusy and 2% with 500,
    drops 0.5% of connections before forwarding and withholds the reply of 0.5% after
    Azurite applied them. Meanwhile a random worker process is SIGKILLed every 1-2 s until
    every mini-batch is done (run_max_try=6). Submit is retried with one client request id.
    """
    started = time.monotonic()
    # Polled every 5 s (the default): each poll sums all 2,000 mini-batch rows.
    app = make_app(fault_proxy, workers=3, poll_s=5.0)
    inputs, expected = app.upload_inputs(2000)
    app.start()
    fault_proxy.set_rates(error_503=0.04, error_500=0.02, drop=0.005, timeout=0.005)
    # Random kills may hit one mini-batch's worker a few times in a row: enough tries
    # that none runs out by chance (a mini-batch that keeps killing workers is e2e's).
    job = app.submit(app.spec(SCRIPTS / "echo.py", inputs, run_max_try=6))
    with WorkerKiller(app, seed=1) as killer:
        app.wait_until(job, 720, lambda j: j.state.value != "running" and j.partitioned)
    view = app.wait(job, 120)
    fault_proxy.clear()
    exact = app.check_exact(view, expected)
    jobs = list(app.direct.tables.query(app.settings.jobs_table, "job"))
    assert len(jobs) == 1, f"a retried submit created {len(jobs)} jobs"
    figures(faults=fault_proxy.faults_by_kind(), sigkills=killer.kills,
            worker_restarts=_restarts(app), proxy=fault_proxy.summary(), jobs_completed=1,
            rows_checked=exact.rows, duplicates=exact.duplicates, missing=exact.missing,
            mini_batches_retried=exact.retried, max_tries=exact.max_tries,
            seconds=round(time.monotonic() - started, 1))


@pytest.mark.timeout(1800)  # a cap for a run that never ends: the waits fail first
def test_runner_restarts_mid_job_lose_and_repeat_nothing(
        make_app: Callable[..., FaultApp], figures: Figures) -> None:
    """(b): 400 mini-batches on 2 workers; the whole local runner (HTTP server, Durable
    runtime, worker processes) is stopped and started again three times mid-job: twice
    gracefully (workers finish their message) and once after SIGKILLing every worker
    first, as a crashed host leaves them. The orchestration resumes from its store.
    """
    started = time.monotonic()
    app = make_app(workers=2)
    inputs, expected = app.upload_inputs(400)
    app.start()
    job = app.submit(app.spec(SCRIPTS / "echo.py", inputs))
    restarts = killed = 0
    for at, crash in ((80, False), (180, True), (280, False)):
        app.wait_progress(job, 240, succeeded=at)
        assert app.runner is not None
        if crash:
            for pid in app.runner.worker_pids:
                os.kill(pid, signal.SIGKILL)
                killed += 1
        app.stop()
        app.start()
        restarts += 1
    view = app.wait(job, 240)
    exact = app.check_exact(view, expected)
    figures(runner_restarts=restarts, sigkills=killed, jobs_completed=1,
            rows_checked=exact.rows, duplicates=exact.duplicates, missing=exact.missing,
            mini_batches_retried=exact.retried, seconds=round(time.monotonic() - started, 1))


@pytest.mark.timeout(1800)  # a cap for a run that never ends: the waits fail first
def test_azurite_restarts_mid_job_lose_and_repeat_nothing(
        disk_azurite: Azurite, disk_app: FaultApp, figures: Figures) -> None:
    """(c): 400 mini-batches on 3 workers against a private Azurite persisting to disk;
    Azurite is stopped and started again on the same ports twice mid-job: at once, and
    after 12 s down, far longer than the app's storage retries last (harness.py). Every
    storage call of workers, orchestrator and Durable store fails meanwhile. State on
    disk survives; the job completes exactly.
    """
    started = time.monotonic()
    app = disk_app
    inputs, expected = app.upload_inputs(400)
    app.start()
    job = app.submit(app.spec(SCRIPTS / "echo.py", inputs))
    outages = []
    for at, pause in ((100, 0.0), (250, 12.0)):
        app.wait_progress(job, 240, succeeded=at)
        down = time.monotonic()
        disk_azurite.stop()
        time.sleep(pause)
        disk_azurite.start()
        outages.append(round(time.monotonic() - down, 1))
    view = app.wait(job, 300)
    exact = app.check_exact(view, expected)
    figures(azurite_restarts=len(outages), outage_seconds=outages,
            worker_restarts=_restarts(app), jobs_completed=1, rows_checked=exact.rows,
            duplicates=exact.duplicates, missing=exact.missing,
            mini_batches_retried=exact.retried, seconds=round(time.monotonic() - started, 1))


@pytest.mark.timeout(1800)  # a cap for a run that never ends: the waits fail first
def test_expired_message_leases_run_a_mini_batch_twice_but_write_it_once(
        make_app: Callable[..., FaultApp], fault_proxy: FaultProxy, tmp_path: Path,
        figures: Figures) -> None:
    """(d): 100 mini-batches on 3 workers with a 2 s message lease; the proxy fails every
    lease renewal (PUT .../messages/{id}?popreceipt=...) with 503, and every 20th item
    sleeps 5 s in run() on its first try. Its message reappears while that run() goes
    on, a free worker runs the same mini-batch again, and the late first result must
    lose: every row once, slow mini-batches show two tries.
    """
    started = time.monotonic()
    markers = tmp_path / "markers"
    markers.mkdir()
    app = make_app(fault_proxy, workers=3, message_lease_s=2.0)
    inputs, expected = app.upload_inputs(100)
    app.start()
    fault_proxy.set_rates("queue", methods=["PUT"], path=r"popreceipt=", error_503=1.0)
    spec = app.spec(FAULT_SCRIPTS / "slow_first_try.py", inputs, run_max_try=5,
                    environment_variables={"SLOW_MARKER_DIR": str(markers),
                                           "SLOW_EVERY": "20", "SLOW_SECONDS": "5"})
    job = app.submit(spec)
    view = app.wait(job, 300)
    fault_proxy.clear()
    exact = app.check_exact(view, expected)
    report = app.outputs(view)["processed_mini-batches.csv"].splitlines()[1:]
    slow_tries = [int(line.split(",")[1]) for line in report
                  if int(line.split(",")[0]) % 20 == 0]
    seen_twice = sum(1 for t in slow_tries if t >= 2)
    # A redelivered message waits for a free worker (one running a slow mini-batch holds
    # the other messages it took), so the first run may end first: two of the five were
    # seen twice in every run here, one once in a full suite on a busy machine. One is
    # enough to show a late first result losing; the rows are checked exact above.
    assert seen_twice >= 1, f"no slow mini-batch was redelivered while running " \
                            f"(tries {slow_tries})"
    figures(faults=fault_proxy.faults_by_kind(), slow_mini_batches_run_twice=seen_twice,
            jobs_completed=1, rows_checked=exact.rows, duplicates=exact.duplicates,
            missing=exact.missing, seconds=round(time.monotonic() - started, 1))


@pytest.mark.timeout(1800)  # a cap for a run that never ends: the waits fail first
def test_lost_replies_on_mini_batch_row_writes_strand_nothing(
        make_app: Callable[..., FaultApp], fault_proxy: FaultProxy, figures: Figures) -> None:
    """(e), focused: 300 mini-batches on 3 workers; the proxy withholds the reply of 10%
    of table writes (POST/PUT/PATCH/MERGE) after Azurite applied them, so a worker does
    not know whether its claim or result landed, and the SDK's retry of a conditional
    write meets its own ETag change (412). No mini-batch may be left unfinished.
    """
    started = time.monotonic()
    app = make_app(fault_proxy, workers=3)
    inputs, expected = app.upload_inputs(300)
    app.start()
    fault_proxy.set_rates("table", methods=["POST", "PUT", "PATCH", "MERGE"], timeout=0.10)
    job = app.submit(app.spec(SCRIPTS / "echo.py", inputs))
    view = app.wait(job, 240)
    fault_proxy.clear()
    exact = app.check_exact(view, expected)
    figures(faults=fault_proxy.faults_by_kind(), proxy=fault_proxy.summary(),
            jobs_completed=1, rows_checked=exact.rows, duplicates=exact.duplicates,
            missing=exact.missing, mini_batches_retried=exact.retried,
            seconds=round(time.monotonic() - started, 1))


@pytest.mark.timeout(1800)  # a cap for a run that never ends: the waits fail first
def test_storage_errors_do_not_use_up_a_mini_batchs_tries(
        make_app: Callable[..., FaultApp], fault_proxy: FaultProxy, figures: Figures) -> None:
    """(e), tries: 200 mini-batches with run_max_try=1 on 3 workers; the proxy withholds
    the reply of 10% of table inserts (a worker's claim of a mini-batch lands, the worker
    gets an error and the queue redelivers). The script never fails and no worker dies,
    so every mini-batch must succeed: a storage error is not a failed try.
    """
    started = time.monotonic()
    app = make_app(fault_proxy, workers=3)
    inputs, expected = app.upload_inputs(200)
    app.start()
    fault_proxy.set_rates("table", methods=["POST"], timeout=0.10)
    submitted = time.monotonic()
    job = app.submit(app.spec(SCRIPTS / "echo.py", inputs, run_max_try=1))
    view = app.wait(job, 240)
    fault_proxy.clear()
    exact = app.check_exact(view, expected)
    figures(faults=fault_proxy.faults_by_kind(), jobs_completed=1, rows_checked=exact.rows,
            duplicates=exact.duplicates, missing=exact.missing,
            job_seconds=round(time.monotonic() - submitted, 1),
            seconds=round(time.monotonic() - started, 1))


@pytest.mark.timeout(1800)  # a cap for a run that never ends: the waits fail first
def test_orchestrator_survives_storage_errors_in_its_activities(
        make_app: Callable[..., FaultApp], fault_proxy: FaultProxy, figures: Figures) -> None:
    """(e), orchestrator: 100 mini-batches on 3 workers; until every mini-batch is done
    the proxy answers 503 to every write of progress_overview.json, which the
    orchestrator's check_job activity makes on each poll, so that activity fails past
    the SDK's retries again and again. A failed poll must cost a poll, not the job: once
    storage answers again the job finalizes (a failed orchestration would leave it
    running forever).
    """
    started = time.monotonic()
    app = make_app(fault_proxy, workers=3)
    inputs, expected = app.upload_inputs(100)
    app.start()
    fault_proxy.set_rates("blob", methods=["PUT"], path=r"progress_overview\.json",
                          error_503=1.0)
    job = app.submit(app.spec(SCRIPTS / "echo.py", inputs))
    app.wait_until(job, 240, lambda j: j.partitioned and
                   app.view(job)["mini_batches"]["pending"] == 0)
    time.sleep(3.0)  # a few more failing polls
    fault_proxy.clear()
    view = app.wait(job, 120)
    exact = app.check_exact(view, expected)
    figures(faults=fault_proxy.faults_by_kind(), jobs_completed=1, rows_checked=exact.rows,
            duplicates=exact.duplicates, missing=exact.missing,
            seconds=round(time.monotonic() - started, 1))
