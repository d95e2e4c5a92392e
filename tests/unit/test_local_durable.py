"""The local Durable runtime driving real Durable Functions through the SDK's replay entry."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.durable_functions as df
import azure.functions as func
import pytest

from batchfx.local import durable_history as h
from batchfx.local.durable import LocalDurableRuntime
from batchfx.local.durable_store import MemoryInstanceStore
from batchfx.local.http_server import shared_loop

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


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


@pytest.fixture
def runtime() -> Iterator[LocalDurableRuntime]:
    rt = LocalDurableRuntime(app, MemoryInstanceStore())
    yield rt
    rt.stop()


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


# -- the SDK's own client against the emulated webhooks ---------------------------------


@pytest.fixture
def served(runtime: LocalDurableRuntime) -> Iterator[str]:
    """The runtime in the background behind a loopback HTTP server; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = runtime.handle_http(
                self.command, url.path, dict(parse_qsl(url.query)), body
            )
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    runtime.base_url = base_url
    runtime.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()


def _client_run(main: Any) -> Any:
    # The SDK keeps one aiohttp session per process, bound to the loop that first used it:
    # run on the process's shared loop, as the local runner's HTTP server does.
    return asyncio.run_coroutine_threadsafe(main(), shared_loop()).result(timeout=60)


async def _wait_done(client: df.DurableOrchestrationClient, instance_id: str) -> Any:
    for _ in range(500):
        status = await client.get_status(instance_id)
        if status.runtime_status.value in ("Completed", "Failed", "Terminated"):
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"instance {instance_id} did not finish")


def test_sdk_client_starts_and_reads_status(runtime: LocalDurableRuntime, served: str) -> None:
    async def main() -> Any:
        client = df.DurableOrchestrationClient(runtime.client_binding())
        instance_id = await client.start_new("sequence", "via-http", 3)
        status = await _wait_done(client, instance_id)
        return instance_id, status

    instance_id, status = _client_run(main)
    assert instance_id == "via-http"
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed
    assert status.output == [4, 5]
    assert status.input_ == "3"  # the extension shows the input JSON-encoded


def test_sdk_client_unknown_instance_status_is_falsy(
    runtime: LocalDurableRuntime, served: str
) -> None:
    async def main() -> Any:
        return await df.DurableOrchestrationClient(runtime.client_binding()).get_status("nope")

    assert not _client_run(main)


def test_sdk_client_raises_event_and_terminates(runtime: LocalDurableRuntime, served: str) -> None:
    async def main() -> Any:
        client = df.DurableOrchestrationClient(runtime.client_binding())
        waiting = await client.start_new("waits", None, None)
        await client.raise_event(waiting, "go", ["a", 1])
        doomed = await client.start_new("waits", None, None)
        await client.terminate(doomed, "stop it")
        return await _wait_done(client, waiting), await _wait_done(client, doomed)

    raised, terminated = _client_run(main)
    assert raised.output == ["a", 1]
    assert terminated.runtime_status == df.OrchestrationRuntimeStatus.Terminated


def test_sdk_client_start_of_unknown_orchestrator_raises(
    runtime: LocalDurableRuntime, served: str
) -> None:
    async def main() -> Any:
        await df.DurableOrchestrationClient(runtime.client_binding()).start_new("nope")

    with pytest.raises(Exception, match="'nope' does not exist"):
        _client_run(main)


def test_durable_client_function_runs_unchanged(runtime: LocalDurableRuntime, served: str) -> None:
    function = next(f for f in app.get_functions() if f.get_function_name() == "http_start")
    request = func.HttpRequest(
        "POST",
        f"{served}/api/start/fan_out",
        body=b"4",
        route_params={"name": "fan_out"},
    )

    async def main() -> Any:
        # What the host does: the client binding is the JSON string; the wrapper builds
        # the DurableOrchestrationClient from it.
        response = await function.get_user_function()(req=request, client=runtime.client_binding())
        payload = json.loads(response.get_body())
        client = df.DurableOrchestrationClient(runtime.client_binding())
        return response, payload, await _wait_done(client, payload["id"])

    response, payload, status = _client_run(main)
    assert response.status_code == 202
    assert payload["statusQueryGetUri"].startswith(f"{served}/runtime/webhooks/durabletask/")
    assert status.output == 14


def test_http_status_of_unknown_instance_is_404(runtime: LocalDurableRuntime) -> None:
    code, _ = runtime.handle_http("GET", "/runtime/webhooks/durabletask/instances/x", {}, b"")
    assert code == 404


def test_http_purge_deletes_a_finished_instance(runtime: LocalDurableRuntime) -> None:
    run_until_done(runtime, runtime.start_new("sequence", "old", 1))
    path = "/runtime/webhooks/durabletask/instances/old"
    assert runtime.handle_http("DELETE", path, {}, b"") == (200, {"instancesDeleted": 1})
    assert runtime.get_status("old") is None
