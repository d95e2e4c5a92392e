"""A small client for batchfx's HTTP API (local runner or deployed app)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from batchfx.errors import BatchfxError, JobNotFoundError, JobStateError, SpecError

__all__ = ["ApiClient", "ApiError"]


class ApiError(BatchfxError):
    """The API answered with an error that is not one of batchfx's own."""


class ApiClient:
    """Calls ``/api/jobs`` with the function key in the ``x-functions-key`` header."""

    def __init__(self, url: str, key: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._key = key
        self._timeout = timeout

    def _call(self, method: str, path: str, body: Any = None,
              headers: dict[str, str] | None = None) -> Any:
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
            message = payload.get("error", str(exc))
            if exc.code == 400 and payload.get("problems"):
                raise SpecError(payload["problems"]) from None
            if exc.code == 404:
                raise JobNotFoundError(message) from None
            if exc.code == 409:
                raise JobStateError(message) from None
            raise ApiError(f"{method} {path}: HTTP {exc.code}: {message}") from None
        except urllib.error.URLError as exc:
            raise ApiError(f"cannot reach batchfx at {self.url}: {exc.reason} — is "
                           "`batchfx serve` running, or is the URL right?") from None

    def submit(self, spec: dict[str, Any], *, client_request_id: str | None = None
               ) -> dict[str, Any]:
        """POST a job spec; returns ``{id, state, status_url, output}``."""
        headers = {"x-ms-client-request-id": client_request_id} if client_request_id else None
        result: dict[str, Any] = self._call("POST", "jobs", spec, headers)
        return result

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's state, counts, throughput, ETA and outputs."""
        result: dict[str, Any] = self._call("GET", f"jobs/{job_id}")
        return result

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """Recent jobs, newest first."""
        result: list[dict[str, Any]] = self._call("GET", f"jobs?limit={limit}")["jobs"]
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job that has not ended."""
        result: dict[str, Any] = self._call("POST", f"jobs/{job_id}/cancel")
        return result
