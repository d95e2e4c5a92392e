"""The local Durable runtime behind its emulated webhooks: the SDK's own client and a
durable-client function against it, and the HTTP management API (durable_sample_app.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.durable_functions as df
import azure.functions as func
import pytest
from durable_sample_app import CALLS, app, run_until_done

from batchfx.local.durable.runtime import LocalDurableRuntime
from batchfx.local.durable.store import MemoryInstanceStore
from batchfx.local.http_server import shared_loop


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


@pytest.fixture
def runtime() -> Iterator[LocalDurableRuntime]:
    rt = LocalDurableRuntime(app, MemoryInstanceStore())
    yield rt
    rt.stop()


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
