"""Killed workers, redelivered messages, cancel and restart: nothing lost, nothing twice."""

from __future__ import annotations

import csv
import io
import os
import signal
import time
from pathlib import Path

from azure.storage.queue import QueueClient, TextBase64EncodePolicy
from e2e_app import App, lines


def _files(n: int) -> dict[str, str]:
    return {f"item-{i:03d}.txt": str(i) for i in range(n)}


def _wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def _slow_spec(app: App, n: int, marker: Path, seconds: float, **extra: object) -> dict:  # type: ignore[type-arg]
    marker.mkdir(exist_ok=True)
    return app.spec("slow.py", _files(n), mini_batch_size=1,
                    environment_variables={"SLOW_MARKER_DIR": str(marker),
                                           "SLOW_SECONDS": str(seconds)}, **extra)


def test_worker_killed_mid_mini_batch_loses_nothing(app: App, tmp_path: Path) -> None:
    marker = tmp_path / "markers"
    job = app.submit(_slow_spec(app, 6, marker, 2.0))
    _wait_for(lambda: any(marker.iterdir()))
    assert app.runner is not None
    victim = app.runner.worker_pids[0]
    os.kill(victim, signal.SIGKILL)
    view = app.wait(job)
    assert view["state"] == "completed"
    assert view["items"]["succeeded"] == 6
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == [f"item-{i:03d}.txt ok" for i in range(6)]
    assert app.runner.worker_restarts >= 1


def test_mini_batch_that_keeps_killing_workers_ends_failed(app: App) -> None:
    spec = app.spec("crash.py", {"a.txt": "1", "crash.txt": "2", "z.txt": "3"},
                    mini_batch_size=1, run_max_try=2)
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed"
    assert view["items"]["failed"] == 1
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == ["a.txt", "z.txt"]
    assert "exited with code 3" in out["errors.txt"]


def test_redelivered_messages_never_duplicate_rows(app: App, tmp_path: Path) -> None:
    marker = tmp_path / "markers"
    job = app.submit(_slow_spec(app, 6, marker, 0.5, process_count_per_node=1))
    queue = QueueClient.from_connection_string(
        app.settings.connection_string or "", app.settings.queue_name,
        message_encode_policy=TextBase64EncodePolicy())
    # Send every mini-batch message a second time while the job runs (a partition retry,
    # or a queue redelivery, looks exactly like this to the scorers).
    sent: set[str] = set()

    def copy_messages() -> bool:
        for m in queue.peek_messages(max_messages=32):
            import base64
            text = base64.b64decode(m.content).decode()
            if text not in sent:
                queue.send_message(text)
                sent.add(text)
        return len(sent) >= 6
    _wait_for(copy_messages, timeout=30)
    view = app.wait(job)
    assert view["state"] == "completed"
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == [f"item-{i:03d}.txt ok" for i in range(6)]
    report = list(csv.DictReader(io.StringIO(out["processed_mini-batches.csv"])))
    assert [r["tries"] for r in report] == ["1"] * 6


def test_cancel_stops_the_job_and_writes_its_summary(app: App, tmp_path: Path) -> None:
    marker = tmp_path / "markers"
    job = app.submit(_slow_spec(app, 30, marker, 0.5))
    _wait_for(lambda: any(marker.iterdir()))
    assert app.api is not None
    assert app.api.cancel(job)["state"] == "canceled"
    view = app.wait(job)
    assert view["state"] == "canceled"
    assert view["mini_batches"]["succeeded"] < 30
    out = app.outputs(view)
    assert "status: canceled" in out["job_result.txt"]
    assert "not run" in out["processed_mini-batches.csv"]


def test_restarted_runner_resumes_the_job(app: App, tmp_path: Path) -> None:
    marker = tmp_path / "markers"
    job = app.submit(_slow_spec(app, 8, marker, 0.5))
    _wait_for(lambda: any(marker.iterdir()))
    app.stop()
    app.start()
    view = app.wait(job)
    assert view["state"] == "completed"
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == [f"item-{i:03d}.txt ok" for i in range(8)]


def test_mini_batch_whose_worker_is_killed_every_try_ends_failed_not_hung(
        app: App, tmp_path: Path) -> None:
    marker = tmp_path / "markers"
    spec = _slow_spec(app, 1, marker, 60.0, run_max_try=2, run_invocation_timeout=120)
    job = app.submit(spec)
    assert app.runner is not None
    killed: set[str] = set()
    for _ in range(2):  # each try: wait until run() started, then kill every worker process
        _wait_for(lambda: any(p.name not in killed for p in marker.iterdir()))
        killed.update(p.name for p in marker.iterdir())
        for pid in app.runner.worker_pids:
            os.kill(pid, signal.SIGKILL)
    view = app.wait(job, timeout=120)
    assert view["state"] == "completed"
    assert view["items"]["failed"] == 1
    out = app.outputs(view)
    assert "WorkerLost" in out["errors.csv"]
    report = list(csv.DictReader(io.StringIO(out["processed_mini-batches.csv"])))
    assert report[0]["status"] == "failed"
    assert report[0]["tries"] == "2"


def test_orchestrator_history_stays_small_with_continue_as_new(
        app: App, tmp_path: Path) -> None:
    marker = tmp_path / "markers"
    job = app.submit(_slow_spec(app, 6, marker, 0.5, process_count_per_node=1))
    app.wait(job)
    assert app.runner is not None and app.runner.durable is not None
    status = app.runner.durable.get_status(job, show_history=True)
    assert status is not None
    assert status["runtimeStatus"] == "Completed"
    # Polled every 0.3 s for several seconds, yet one execution's history holds one poll.
    assert len(status.get("historyEvents") or []) < 25


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (a worker's script processes)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except OSError:  # gone meanwhile
                pass
    return found


def test_a_worker_told_to_stop_finishes_its_run_and_starts_none(app: App,
                                                                tmp_path: Path) -> None:
    """SIGTERM (scale-in) drains a worker: the run() under way finishes and is recorded; the
    mini-batch it had staged next gives its try back and is scored elsewhere."""
    marker = tmp_path / "markers"
    job = app.submit(_slow_spec(app, 8, marker, 3.0))
    assert app.runner is not None
    victim = app.runner.worker_pids[0]

    def victim_running() -> set[str]:
        scripts = _children(victim)
        return {m.name for m in marker.iterdir() if int(m.suffix[1:]) in scripts}

    _wait_for(victim_running, 120)  # one of its run()s has begun (it lasts 3 s)
    began = victim_running()
    scripts = _children(victim)
    os.kill(victim, signal.SIGTERM)
    _wait_for(lambda: victim not in app.runner.worker_pids, 60)  # exited once drained
    view = app.wait(job)
    assert view["state"] == "completed" and view["items"]["succeeded"] == 8
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == [f"item-{i:03d}.txt ok" for i in range(8)]
    # Its script process started nothing after the signal; what it had begun, it finished.
    assert {m.name for m in marker.iterdir() if int(m.suffix[1:]) in scripts} == began
    report = list(csv.DictReader(io.StringIO(out["processed_mini-batches.csv"])))
    assert len(report) == 8 and {r["tries"] for r in report} == {"1"}  # no try spent
    assert "WorkerLost" not in out["errors.txt"]
