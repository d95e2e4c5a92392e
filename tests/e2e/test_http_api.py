"""The HTTP functions as a client sees them: keys, status codes, messages."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest
from e2e_app import App

from batchfx.cli.client import ApiClient
from batchfx.core.errors import JobNotFoundError, JobStateError, SpecError


def _post(url: str, body: bytes, key: str | None) -> tuple[int, dict]:  # type: ignore[type-arg]
    request = urllib.request.Request(url, data=body, method="POST")
    if key:
        request.add_header("x-functions-key", key)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_submit_answers_202_with_a_status_url(app: App) -> None:
    assert app.runner is not None
    spec = app.spec("echo.py", {"a.txt": "x"})
    status, body = _post(f"{app.runner.url}/api/jobs", json.dumps(spec).encode(),
                         app.runner.function_key)
    assert status == 202
    assert body["status_url"].endswith(f"/api/jobs/{body['id']}")
    assert body["state"] == "queued"
    assert app.wait(body["id"])["state"] == "completed"


def test_requests_without_the_function_key_are_refused(app: App) -> None:
    assert app.runner is not None
    status, body = _post(f"{app.runner.url}/api/jobs", b"{}", None)
    assert status == 401
    assert "function key" in body["error"]
    with pytest.raises(Exception, match="401"):
        ApiClient(app.runner.url, "wrong-key").list()


def test_bad_json_is_a_400_naming_the_problem(app: App) -> None:
    assert app.runner is not None
    status, body = _post(f"{app.runner.url}/api/jobs", b"{not json",
                         app.runner.function_key)
    assert status == 400
    assert "not valid JSON" in body["error"]


def test_json_nested_too_deeply_is_a_400_not_a_500(app: App) -> None:
    assert app.runner is not None
    for path in ("jobs", "deployments", "schedules"):
        status, body = _post(f"{app.runner.url}/api/{path}", b"[" * 100_000 + b"]" * 100_000,
                             app.runner.function_key)
        assert (status, body["error"]) == (400, "request body is nested too deeply to read")


def test_oversized_body_is_a_413(app: App) -> None:
    assert app.runner is not None
    status, body = _post(f"{app.runner.url}/api/jobs", b" " * (1024 * 1024 + 1),
                         app.runner.function_key)
    assert status == 413
    assert "at most 1048576" in body["error"]


def test_invalid_spec_lists_every_problem_and_records_nothing(app: App) -> None:
    assert app.api is not None
    spec = app.spec("echo.py", {"a.txt": "x"}, name="Bad Name", mini_batch_size="ten",
                    colour="red")
    with pytest.raises(SpecError) as caught:
        app.api.submit(spec)
    text = "\n".join(caught.value.problems)
    assert "name:" in text and "mini_batch_size:" in text and "colour:" in text
    assert app.api.list() == []


def test_missing_inputs_and_entry_script_are_refused_before_anything_is_written(
        app: App) -> None:
    assert app.api is not None
    spec = app.spec("echo.py", {"a.txt": "x"}, inputs="nosuchcontainer/data",
                    entry_script="missing.py")
    with pytest.raises(SpecError) as caught:
        app.api.submit(spec)
    text = "\n".join(caught.value.problems)
    assert "nosuchcontainer" in text
    assert "missing.py" in text
    assert app.api.list() == []


def test_unknown_job_is_a_404(app: App) -> None:
    assert app.api is not None
    with pytest.raises(JobNotFoundError):
        app.api.get("no-such-job")
    with pytest.raises(JobNotFoundError):
        app.api.cancel("no-such-job")


def test_job_view_has_counts_throughput_eta_and_outputs(app: App) -> None:
    assert app.api is not None
    job = app.submit(app.spec("echo.py", {f"{i}.txt": "x" for i in range(4)}))
    view = app.wait(job)
    assert view["mini_batches"]["total"] == 2
    assert view["items_per_second"] > 0
    assert view["eta_seconds"] == 0
    assert view["output"]["append_row_file"].endswith("/parallel_run_step.txt")
    assert [j["id"] for j in app.api.list()] == [job]
    with pytest.raises(JobStateError):
        app.api.cancel(job)


def test_submit_with_a_client_request_id_is_idempotent(app: App) -> None:
    assert app.api is not None
    spec = app.spec("echo.py", {"a.txt": "x", "b.txt": "y"})
    first = app.api.submit(spec, client_request_id="nightly-2026-11-23")
    again = app.api.submit(spec, client_request_id="nightly-2026-11-23")
    assert first["created"] is True
    assert again["created"] is False
    assert again["id"] == first["id"]
    other = app.api.submit(spec, client_request_id="nightly-2026-11-24")
    assert other["id"] != first["id"]
    assert app.wait(first["id"])["state"] == "completed"
    assert len(app.api.list()) == 2


def test_a_description_is_shown_and_a_compute_target_reported_as_not_applied(
        app: App) -> None:
    spec = app.spec("echo.py", {"a.txt": "x"}, description="scores  the\nnightly files",
                    compute_target="cpu-cluster")
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed"
    assert view["description"] == "scores  the\nnightly files"
    assert list(view["ignored_settings"]) == ["compute_target"]
    assert "description: scores the nightly files" in app.outputs(view)["job_result.txt"]


def _raw(app: App, request: bytes) -> str:
    """Send raw bytes; the first line of the answer (the server may close after it)."""
    assert app.runner is not None
    host, port = app.runner.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(request)
        return conn.makefile("rb").readline().decode().strip()


def test_the_key_header_name_is_case_insensitive(app: App) -> None:
    assert app.runner is not None
    request = urllib.request.Request(f"{app.runner.url}/api/jobs")
    request.add_header("X-FUNCTIONS-KEY", app.runner.function_key)
    with urllib.request.urlopen(request) as response:
        assert response.status == 200


def test_a_request_without_the_key_is_refused_before_its_body_is_read(app: App) -> None:
    # Announces 300 MB and sends none of it: the answer comes from the headers alone.
    assert _raw(app, b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 314572800\r\n\r\n"
                ).startswith("HTTP/1.1 401")


def test_a_bad_content_length_and_a_huge_body_are_refused_unread(app: App) -> None:
    assert app.runner is not None
    key = (app.runner.function_key or "").encode()
    assert _raw(app, b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: twelve\r\n"
                b"x-functions-key: " + key + b"\r\n\r\n").startswith("HTTP/1.1 400")
    assert _raw(app, b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 314572800\r\n"
                b"x-functions-key: " + key + b"\r\n\r\n").startswith("HTTP/1.1 413")


def test_the_durable_webhook_needs_the_key(app: App) -> None:
    assert app.runner is not None
    url = f"{app.runner.url}/runtime/webhooks/durabletask/instances/some-job/terminate"
    status, body = _post(url, b"", None)
    assert status == 401 and "Durable webhook" in body["error"]
    key = (app.runner.function_key or "").encode()
    answer = _raw(app, b"POST /runtime/webhooks/durabletask/instances/some-job/terminate "
                  b"HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nx-functions-key: " + key
                  + b"\r\n\r\n")
    assert answer.startswith("HTTP/1.1 404")  # no such instance: the request was let through


@pytest.mark.parametrize("job_id", ["x" * 20_000, "a%2Fb", "Job%23%3F", "%00"])
def test_an_id_that_no_job_can_have_is_a_404_not_a_500(app: App, job_id: str) -> None:
    assert app.runner is not None
    request = urllib.request.Request(f"{app.runner.url}/api/jobs/{job_id}")
    request.add_header("x-functions-key", app.runner.function_key)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request)
    assert info.value.code == 404
    assert json.loads(info.value.read())["error"].startswith("no job with id")


def test_route_values_are_percent_decoded_as_the_host_does(app: App) -> None:
    assert app.runner is not None and app.api is not None
    job_id = app.submit(app.spec("echo.py", {"a.txt": "x"}))
    encoded = job_id.replace("-", "%2D")
    request = urllib.request.Request(f"{app.runner.url}/api/jobs/{encoded}")
    request.add_header("x-functions-key", app.runner.function_key)
    with urllib.request.urlopen(request) as response:
        assert json.loads(response.read())["id"] == job_id
    app.wait(job_id)
