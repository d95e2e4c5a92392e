"""The local Durable runtime driving real Durable Functions through the SDK's replay entry:
activities, timers, continue_as_new, retries, events, restarts (durable_sample_app.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from durable_sample_app import CALLS, app, run_until_done

from batchfx.local.durable import history as h
from batchfx.local.durable.runtime import LocalDurableRuntime
from batchfx.local.durable.store import MemoryInstanceStore


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


@pytest.fixture
def runtime() -> Iterator[LocalDurableRuntime]:
    rt = LocalDurableRuntime(app, MemoryInstanceStore())
    yield rt
    rt.stop()


def test_sequence_of_activities_completes_with_their_results(runtime: LocalDurableRuntime) -> None:
    instance_id = runtime.start_new("sequence", "seq-1", 5)
    status = run_until_done(runtime, instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [6, 7]
    assert status["name"] == "sequence"
    assert status["instanceId"] == "seq-1"


def test_fan_out_with_task_all_runs_every_activity(runtime: LocalDurableRuntime) -> None:
    status = run_until_done(runtime, runtime.start_new("fan_out", None, 6))
    assert status["output"] == sum(n * n for n in range(6))
    assert CALLS["square"] == 6


def test_timer_fires_after_its_wall_clock_time(runtime: LocalDurableRuntime) -> None:
    began = time.monotonic()
    status = run_until_done(runtime, runtime.start_new("sleeper", None, None))
    assert time.monotonic() - began >= 0.2
    assert status["output"] >= 0.2  # context.current_utc_datetime moved past the timer


def test_continue_as_new_runs_rounds_in_fresh_executions(runtime: LocalDurableRuntime) -> None:
    instance_id = runtime.start_new("rounds", None, {"round": 0, "until": 4})
    status = run_until_done(runtime, instance_id)
    assert status["output"] == 4
    assert CALLS["add_one"] == 4
    record = runtime._store.load(instance_id)
    assert record is not None
    # Only the last execution's history is kept: one activity, not four.
    scheduled = [e for e in record["history"] if e["EventType"] == h.EventType.TASK_SCHEDULED]
    assert len(scheduled) == 1


def test_activity_exception_reaches_the_orchestrator(runtime: LocalDurableRuntime) -> None:
    status = run_until_done(runtime, runtime.start_new("catches", None, None))
    assert status["runtimeStatus"] == "Completed"
    assert status["output"].startswith("recovered from: Activity function 'explode' failed")
    assert "ValueError: boom caught" in status["output"]


def test_uncaught_activity_exception_fails_the_instance(runtime: LocalDurableRuntime) -> None:
    status = run_until_done(runtime, runtime.start_new("crashes", None, None))
    assert status["runtimeStatus"] == "Failed"
    assert "Orchestrator function 'crashes' failed" in status["output"]
    assert "boom uncaught" in status["output"]


def test_orchestrator_replays_but_activities_run_once(runtime: LocalDurableRuntime) -> None:
    run_until_done(runtime, runtime.start_new("sequence", None, 1))
    assert CALLS["add_one"] == 2
    assert CALLS["sequence replay"] == 3  # start, after the first result, after the second


def test_retry_reruns_a_failing_activity_until_it_succeeds(runtime: LocalDurableRuntime) -> None:
    status = run_until_done(runtime, runtime.start_new("retries", None, "k1"))
    assert status["output"] == ["k1 ok", 2]
    assert CALLS["flaky k1"] == 3


def test_retry_gives_up_after_max_attempts(runtime: LocalDurableRuntime) -> None:
    CALLS["flaky k2"] = -10  # never reaches a successful third call
    status = run_until_done(runtime, runtime.start_new("retries", None, "k2"))
    assert status["runtimeStatus"] == "Failed"
    assert CALLS["flaky k2"] == -7
    assert "attempt -7 of k2 failed" in status["output"]


def test_restarted_runtime_resumes_from_the_store() -> None:
    store = MemoryInstanceStore()
    first = LocalDurableRuntime(app, store)
    instance_id = first.start_new("sequence", "resume-1", 10)
    deadline = time.monotonic() + 10
    while not any(
        e["EventType"] == h.EventType.TASK_COMPLETED for e in _history(store, instance_id)
    ):
        assert time.monotonic() < deadline
        if not first.step():
            time.sleep(0.005)
    first.stop()  # the runner "crashes" with the second activity scheduled, maybe running

    second = LocalDurableRuntime(app, store)
    status = run_until_done(second, instance_id)
    assert status["output"] == [11, 12]
    assert CALLS["add_one"] in (2, 3)  # at least once: the second may have run twice


def test_starting_a_running_id_again_keeps_the_one_execution(
    runtime: LocalDurableRuntime,
) -> None:
    first = runtime.start_new("sequence", "job-7", 1)
    execution = runtime._store.load("job-7")["execution_id"]  # type: ignore[index]
    runtime.step()
    assert runtime.start_new("sequence", "job-7", 100) == first == "job-7"
    status = run_until_done(runtime, "job-7")
    assert status["output"] == [2, 3]
    assert runtime._store.load("job-7")["execution_id"] == execution  # type: ignore[index]
    assert CALLS["add_one"] == 2


def test_starting_a_finished_id_again_starts_a_new_execution(
    runtime: LocalDurableRuntime,
) -> None:
    run_until_done(runtime, runtime.start_new("sequence", "again", 1))
    runtime.start_new("sequence", "again", 10)
    assert run_until_done(runtime, "again")["output"] == [11, 12]


def test_unknown_orchestrator_is_named_with_the_known_ones(runtime: LocalDurableRuntime) -> None:
    with pytest.raises(ValueError, match=r"'nope' does not exist; known orchestrators: .*fan_out"):
        runtime.start_new("nope", None, None)


def test_external_event_and_custom_status(runtime: LocalDurableRuntime) -> None:
    instance_id = runtime.start_new("waits", None, None)
    runtime.step()
    assert runtime.get_status(instance_id)["customStatus"] == "waiting for go"  # type: ignore[index]
    assert runtime.raise_event(instance_id, "go", {"x": 1})
    assert run_until_done(runtime, instance_id)["output"] == {"x": 1}


def test_terminate_stops_a_waiting_instance(runtime: LocalDurableRuntime) -> None:
    instance_id = runtime.start_new("waits", None, None)
    runtime.step()
    assert runtime.terminate(instance_id, "no longer needed")
    status = runtime.get_status(instance_id)
    assert status is not None
    assert (status["runtimeStatus"], status["output"]) == ("Terminated", "no longer needed")
    assert not runtime.terminate(instance_id, "twice")


def test_unsupported_action_fails_the_instance_naming_it(runtime: LocalDurableRuntime) -> None:
    status = run_until_done(runtime, runtime.start_new("nests", None, None))
    assert status["runtimeStatus"] == "Failed"
    assert "does not support CALL_SUB_ORCHESTRATOR" in status["output"]


def test_background_thread_drives_instances(runtime: LocalDurableRuntime) -> None:
    runtime.start()
    instance_id = runtime.start_new("fan_out", None, 3)
    deadline = time.monotonic() + 10
    while runtime.get_status(instance_id)["runtimeStatus"] != "Completed":  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert runtime.get_status(instance_id)["output"] == 5  # type: ignore[index]


def _history(store: MemoryInstanceStore, instance_id: str) -> list[dict[str, Any]]:
    record = store.load(instance_id)
    return [] if record is None else list(record["history"])
