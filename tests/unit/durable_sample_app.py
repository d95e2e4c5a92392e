"""A sample Durable Functions app for the local Durable runtime's tests: orchestrators and
activities that exercise each feature, a call counter, and a loop that drives one instance."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from batchfx.local.durable.runtime import LocalDurableRuntime

__all__ = ["CALLS", "app", "run_until_done"]

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
CALLS: Counter[str] = Counter()  # activity calls and orchestrator replays, by name
_calls_lock = threading.Lock()


def _count(name: str) -> None:
    with _calls_lock:
        CALLS[name] += 1


@app.orchestration_trigger(context_name="context")
def sequence(context: df.DurableOrchestrationContext) -> Any:
    _count("sequence replay")
    first = yield context.call_activity("add_one", context.get_input())
    second = yield context.call_activity("add_one", first)
    return [first, second]


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Any:
    squares = yield context.task_all(
        [context.call_activity("square", n) for n in range(context.get_input())]
    )
    return sum(squares)


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext) -> Any:
    started = context.current_utc_datetime
    yield context.create_timer(started + timedelta(seconds=0.2))
    return (context.current_utc_datetime - started).total_seconds()


@app.orchestration_trigger(context_name="context")
def rounds(context: df.DurableOrchestrationContext) -> Any:
    state = context.get_input()
    done = yield context.call_activity("add_one", state["round"])
    if done < state["until"]:
        context.continue_as_new({"round": done, "until": state["until"]})
        return None
    return done


@app.orchestration_trigger(context_name="context")
def catches(context: df.DurableOrchestrationContext) -> Any:
    try:
        yield context.call_activity("explode", "caught")
    except Exception as exc:
        return f"recovered from: {exc}"
    return "not reached"


@app.orchestration_trigger(context_name="context")
def crashes(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("explode", "uncaught")
    return "not reached"


@app.orchestration_trigger(context_name="context")
def retries(context: df.DurableOrchestrationContext) -> Any:
    options = df.RetryOptions(first_retry_interval_in_milliseconds=10, max_number_of_attempts=3)
    first = yield context.call_activity_with_retry("flaky", options, context.get_input())
    second = yield context.call_activity("add_one", 1)
    return [first, second]


@app.orchestration_trigger(context_name="context")
def waits(context: df.DurableOrchestrationContext) -> Any:
    context.set_custom_status("waiting for go")
    data = yield context.wait_for_external_event("go")
    return data


@app.orchestration_trigger(context_name="context")
def nests(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_sub_orchestrator("sequence", 1)
    return "not reached"


@app.activity_trigger(input_name="n")
def add_one(n: int) -> int:
    _count("add_one")
    return n + 1


@app.activity_trigger(input_name="n")
def square(n: int) -> int:
    _count("square")
    return n * n


@app.activity_trigger(input_name="label")
def explode(label: str) -> None:
    raise ValueError(f"boom {label}")


@app.activity_trigger(input_name="key")
def flaky(key: str) -> str:
    _count(f"flaky {key}")
    if CALLS[f"flaky {key}"] < 3:
        raise RuntimeError(f"attempt {CALLS[f'flaky {key}']} of {key} failed")
    return f"{key} ok"


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> Any:
    instance_id = await client.start_new(req.route_params["name"], None, req.get_json())
    return client.create_check_status_response(req, instance_id)


def run_until_done(rt: LocalDurableRuntime, instance_id: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = rt.get_status(instance_id)
        assert status is not None
        if status["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            return status
        if not rt.step():
            time.sleep(0.005)
    raise AssertionError(f"instance {instance_id} did not finish: {rt.get_status(instance_id)}")
