"""The job orchestrator's queue window: ``watch_job`` driven through the Durable SDK's replay
entry (the local Durable runtime) with stand-in activities, and ``partition_inputs``
passing the BATCHFX_QUEUE_WINDOW setting on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest
from durable_sample_app import run_until_done

from batchfx.api import context as app_context
from batchfx.api import orchestration
from batchfx.core.settings import Settings
from batchfx.core.watch_steps import QUEUE_WINDOW
from batchfx.local.durable.runtime import LocalDurableRuntime
from batchfx.local.durable.store import MemoryInstanceStore
from batchfx.services.partitioner import PartitionResult

_CONN = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
TOTAL = 12  # mini-batches the stand-in job has
WINDOW = 3  # the window the stand-in partition_inputs says it used


class _Job:
    """A job whose partitioning queues WINDOW mini-batches a call and whose workers finish
    one mini-batch per progress check; records the backlog each partition call found."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queued = 0
        self.finished = 0
        self.backlog_at_partition: list[int] = []
        self.checks = 0

    def partition(self) -> dict[str, Any]:
        with self.lock:
            self.backlog_at_partition.append(self.queued - self.finished)
            self.queued = min(TOTAL, self.queued + WINDOW)
            return {"done": self.queued == TOTAL, "mini_batches": self.queued,
                    "items": self.queued, "window": WINDOW}

    def check(self) -> dict[str, Any]:
        with self.lock:
            self.checks += 1
            self.finished = min(self.queued, self.finished + 1)
            if self.queued == TOTAL and self.finished == TOTAL:
                return {"action": "finalize", "outcome": "Completed", "reason": "all done"}
            return {"action": "wait", "outcome": "", "reason": "", "wait_s": 0.01,
                    "backlog": self.queued - self.finished}


JOB = _Job()
app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
# The real orchestrator function, with stand-ins for its storage-bound activities.
app.orchestration_trigger(context_name="context")(
    orchestration.watch_job._function.get_user_function().orchestrator_function)


@app.activity_trigger(input_name="jobid")
def partition_inputs(jobid: str) -> dict[str, Any]:
    return JOB.partition()


@app.activity_trigger(input_name="jobid")
def check_job(jobid: str) -> dict[str, Any]:
    return JOB.check()


@app.activity_trigger(input_name="request")
def end_job(request: dict[str, Any]) -> str:
    return str(request["outcome"])


@pytest.fixture
def runtime() -> Iterator[LocalDurableRuntime]:
    global JOB
    JOB = _Job()
    rt = LocalDurableRuntime(app, MemoryInstanceStore())
    yield rt
    rt.stop()


def test_the_window_partition_inputs_returns_gates_partitioning(
        runtime: LocalDurableRuntime) -> None:
    instance_id = runtime.start_new("watch_job", "job-1", {"job_id": "job-1", "poll_s": 0.01})
    status = run_until_done(runtime, instance_id, timeout=30)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == {"job_id": "job-1", "state": "Completed"}
    # The first step runs under the default window; every later one only once fewer than
    # WINDOW (not QUEUE_WINDOW) mini-batches were queued and unfinished.
    assert JOB.backlog_at_partition[0] == 0
    assert all(backlog < WINDOW for backlog in JOB.backlog_at_partition)
    assert len(JOB.backlog_at_partition) == TOTAL // WINDOW
    assert JOB.checks >= TOTAL
    assert WINDOW < QUEUE_WINDOW == Settings().queue_window == 2000


def test_partition_inputs_queues_up_to_the_setting_and_returns_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int | None] = []

    def fake_partition_job(storage: Any, job_id: str, *,
                           max_mini_batches: int | None = None) -> PartitionResult:
        assert storage.settings.queue_window == 7
        asked.append(max_mini_batches)
        return PartitionResult(False, 7, 70)

    monkeypatch.setattr(orchestration, "partition_job", fake_partition_job)
    app_context.use_settings(Settings(connection_string=_CONN, queue_window=7))
    try:
        activity = orchestration.partition_inputs._function.get_user_function()
        result = activity("job-1")
    finally:
        app_context.use_settings(None)
    assert asked == [7]
    assert result == {"done": False, "mini_batches": 7, "items": 70, "window": 7}
