"""The API client: each kind of route's error answer becomes the batchfx error it means,
so the CLI says "no schedule named …" for a schedule, never "job not found"."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from batchfx.cli.client import ApiClient, ApiError
from batchfx.core.errors import (
    BatchfxError,
    JobNotFoundError,
    JobStateError,
    NotRegisteredError,
    ScheduleError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    SpecError,
)


class _Answers(BaseHTTPRequestHandler):
    """Answers /api/<kind>/<status>[/...] with that status and an error body."""

    def _answer(self) -> None:
        parts = self.path.split("?")[0].split("/")  # "", "api", kind, status, ...
        status = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 200
        body: dict[str, object] = {"error": f"said by {parts[2]}"}
        if status == 400:
            body["problems"] = ["name: bad"]
        if status == 200:
            body = {parts[2]: [{"name": "x"}]}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def api() -> Iterator[ApiClient]:
    server = HTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ApiClient(f"http://127.0.0.1:{server.server_port}", "key")
    server.shutdown()


@pytest.mark.parametrize(("path", "error"), [
    ("jobs/404", JobNotFoundError), ("jobs/409/cancel", JobStateError),
    ("jobs/400", SpecError),
    ("deployments/404", NotRegisteredError), ("pipelines/404", NotRegisteredError),
    ("models/404", NotRegisteredError), ("deployments/400", SpecError),
    ("schedules/404", ScheduleNotFoundError), ("schedules/409", ScheduleExistsError),
    ("schedules/400", ScheduleError),
    ("drops/404", ApiError), ("deployments/409", ApiError), ("jobs/500", ApiError),
])
def test_an_error_answer_means_what_its_route_kind_says(api: ApiClient, path: str,
                                                        error: type[BatchfxError]) -> None:
    with pytest.raises(BatchfxError) as raised:
        api.call("GET", path)
    assert type(raised.value) is error
    if error in (SpecError, ScheduleError):
        assert raised.value.problems == ["name: bad"]  # type: ignore[attr-defined]
    else:
        assert path.split("/")[0] in str(raised.value)  # the server's message is kept


def test_listings_give_their_items(api: ApiClient) -> None:
    assert api.listed("schedules") == [{"name": "x"}]
    assert api.listed("drops", "?limit=5") == [{"name": "x"}]


def test_an_app_that_is_not_there_is_said_so() -> None:
    with pytest.raises(ApiError, match=r"cannot reach batchfx at http://127\.0\.0\.1:9"):
        ApiClient("http://127.0.0.1:9", timeout=2).call("GET", "jobs")
