"""A small client for batchfx's HTTP API (local runner or deployed app)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from batchfx.core.errors import (
    BatchfxError,
    JobNotFoundError,
    JobStateError,
    NotRegisteredError,
    ProblemsError,
    ScheduleError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    SpecError,
)

__all__ = ["ApiClient", "ApiError"]

# What an error answer means on each kind of route (the path's first part): a 404 names a
# job, or a registered name, or a schedule; a 400 with problems refuses what was sent.
_NOT_FOUND: dict[str, type[BatchfxError]] = {
    "jobs": JobNotFoundError, "deployments": NotRegisteredError,
    "pipelines": NotRegisteredError, "models": NotRegisteredError,
    "schedules": ScheduleNotFoundError}
_REFUSED: dict[str, type[ProblemsError]] = {"schedules": ScheduleError}
_CONFLICT: dict[str, type[BatchfxError]] = {"jobs": JobStateError,
                                            "schedules": ScheduleExistsError}


class ApiError(BatchfxError):
    """The API answered with an error that is not one of batchfx's own."""


class ApiClient:
    """Calls ``/api/jobs`` with the function key in the ``x-functions-key`` header."""

    def __init__(self, url: str, key: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._key = key
        self._timeout = timeout

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> Any:
        """One request to ``/api/{path}``; its JSON answer, or the error its route kind
        means (a missing job, registered name or schedule; a refused spec or schedule)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/api/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self._key:
            request.add_header("x-functions-key", self._key)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"error": raw.decode("utf-8", "replace")}
            raise _error(method, path, exc.code, payload, str(exc)) from None
        except urllib.error.URLError as exc:
            raise ApiError(f"cannot reach batchfx at {self.url}: {exc.reason} — is "
                           "`batchfx serve` running, or is the URL right?") from None

    def listed(self, kind: str, query: str = "") -> list[dict[str, Any]]:
        """``GET /api/{kind}``: the items of a listing (deployments, pipelines, models,
        schedules, drops)."""
        result: list[dict[str, Any]] = self.call("GET", f"{kind}{query}")[kind]
        return result

    def show(self, kind: str, name: str, query: str = "") -> dict[str, Any]:
        """``GET /api/{kind}/{name}``."""
        result: dict[str, Any] = self.call("GET", f"{kind}/{name}{query}")
        return result

    def delete(self, kind: str, name: str) -> dict[str, Any]:
        """``DELETE /api/{kind}/{name}``."""
        result: dict[str, Any] = self.call("DELETE", f"{kind}/{name}")
        return result

    def post(self, path: str, body: Any = None, *, request_id: str | None = None) -> Any:
        """``POST /api/{path}`` (with a client request id, for an idempotent submit)."""
        headers = {"x-ms-client-request-id": request_id} if request_id else None
        return self.call("POST", path, body, headers)

    def submit(self, spec: dict[str, Any], *, client_request_id: str | None = None
               ) -> dict[str, Any]:
        """POST a job spec; returns ``{id, state, status_url, output}``."""
        result: dict[str, Any] = self.post("jobs", spec, request_id=client_request_id)
        return result

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's state, counts, throughput, ETA and outputs."""
        result: dict[str, Any] = self.call("GET", f"jobs/{job_id}")
        return result

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """Recent jobs, newest first."""
        result: list[dict[str, Any]] = self.call("GET", f"jobs?limit={limit}")["jobs"]
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job that has not ended."""
        result: dict[str, Any] = self.call("POST", f"jobs/{job_id}/cancel")
        return result


def _error(method: str, path: str, status: int, payload: dict[str, Any],
           fallback: str) -> BatchfxError:
    """The batchfx error an HTTP error answer on ``path`` stands for."""
    kind = path.split("/", 1)[0].split("?", 1)[0]
    message = str(payload.get("error", fallback))
    if status == 400 and payload.get("problems"):
        return _REFUSED.get(kind, SpecError)(list(payload["problems"]))
    if status == 404 and kind in _NOT_FOUND:
        return _NOT_FOUND[kind](message)
    if status == 409 and kind in _CONFLICT:
        return _CONFLICT[kind](message)
    return ApiError(f"{method} {path}: HTTP {status}: {message}")
