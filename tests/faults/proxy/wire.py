"""HTTP/1.1 on the wire for the fault proxy: reading requests and responses byte for byte,
the error replies of a struggling storage account, and the connection to Azurite."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

__all__ = ["MESSAGES", "Closed", "Request", "Upstream", "error_reply", "read_request",
           "read_response"]

MESSAGES = {
    "error_500": (500, "Internal Server Error", "InternalError",
                  "The server encountered an internal error. Please retry the request."),
    "error_503": (503, "Service Unavailable", "ServerBusy",
                  "The server is busy. Operations per second is over the account limit; "
                  "retry after some time."),
}


@dataclass
class Request:
    """One request as read from the client: its method, target and raw bytes."""

    method: str
    target: str
    raw: bytes
    close: bool


class Closed(Exception):
    """The peer closed the connection between messages."""


def _read_head(stream: BinaryIO) -> list[bytes]:
    lines: list[bytes] = []
    while True:
        line = stream.readline(65537)
        if not line:
            if lines:
                raise ConnectionError("connection closed inside a message head")
            raise Closed()
        if line in (b"\r\n", b"\n"):
            if not lines:  # tolerate a stray CRLF between messages
                continue
            return [*lines, line]
        lines.append(line)


def _headers(lines: list[bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        if value:
            out[name.strip().lower()] = value.strip()
    return out


def _read_body(stream: BinaryIO, headers: dict[str, str], until_close: bool) -> bytes:
    """The message body exactly as sent (chunk framing included)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_line = stream.readline(65537)
            if not size_line:
                raise ConnectionError("connection closed inside a chunked body")
            parts.append(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the final CRLF
                    trailer = stream.readline(65537)
                    parts.append(trailer)
                    if trailer in (b"\r\n", b"\n", b""):
                        return b"".join(parts)
            parts.append(_read_exact(stream, size + 2))
    if "content-length" in headers:
        return _read_exact(stream, int(headers["content-length"]))
    return stream.read() if until_close else b""


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n) if n else b""
    if len(data) != n:
        raise ConnectionError(f"connection closed after {len(data)} of {n} body bytes")
    return data


def read_request(stream: BinaryIO) -> Request:
    head = _read_head(stream)
    method, target, version = head[0].decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = _headers(head)
    body = _read_body(stream, headers, until_close=False)
    close = (headers.get("connection", "").lower() == "close"
             or (version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive"))
    return Request(method.upper(), target, b"".join(head) + body, close)


def read_response(stream: BinaryIO, method: str) -> tuple[bytes, bool]:
    """(raw response, whether the upstream closes after it)."""
    while True:
        head = _read_head(stream)
        status = int(head[0].split(b" ", 2)[1])
        if status != 100 and not 100 < status < 200:
            break
    headers = _headers(head)
    close = headers.get("connection", "").lower() == "close"
    no_body = method == "HEAD" or status in (204, 304)
    bodiless_close = not no_body and "content-length" not in headers and \
        "chunked" not in headers.get("transfer-encoding", "").lower()
    body = b"" if no_body else _read_body(stream, headers, until_close=True)
    return b"".join(head) + body, close or bodiless_close


def error_reply(service: str, kind: str, retry_after_s: float | None) -> bytes:
    status, reason, code, text = MESSAGES[kind]
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    message = f"{text}\nRequestId:{request_id}\nTime:{now.strftime('%Y-%m-%dT%H:%M:%S.%f0Z')}"
    if service == "table":
        error = {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}}
        body = json.dumps(error, separators=(",", ":")).encode()
        content_type = "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"
    else:
        body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error>").encode()
        content_type = "application/xml"
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", f"x-ms-request-id: {request_id}",
             f"x-ms-error-code: {code}", "x-ms-version: 2021-12-02",
             f"Date: {now.strftime('%a, %d %b %Y %H:%M:%S GMT')}", "Connection: keep-alive"]
    if retry_after_s is not None:
        lines.append(f"Retry-After: {retry_after_s:g}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Upstream:
    """One keep-alive connection to Azurite, reopened when Azurite closed it while idle."""

    def __init__(self, address: tuple[str, int]) -> None:
        self._address = address
        self._sock: socket.socket | None = None
        self._stream: BinaryIO | None = None

    def _stale(self) -> bool:
        if self._sock is None:
            return True
        readable, _, _ = select.select([self._sock], [], [], 0)
        if not readable:
            return False
        try:
            return self._sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def exchange(self, request: Request) -> bytes:
        """Send a request and return the raw response."""
        for attempt in (0, 1):
            reused = self._sock is not None and not self._stale()
            if not reused:
                self.close()
                self._sock = socket.create_connection(self._address, timeout=120)
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._stream = self._sock.makefile("rb")
            assert self._sock is not None and self._stream is not None
            try:
                self._sock.sendall(request.raw)
                raw, close = read_response(self._stream, request.method)
            except (Closed, ConnectionError, OSError):
                self.close()
                # A kept-alive connection Azurite closed at the same moment: send once more
                # on a fresh one (Azurite had not read the request). Otherwise give up.
                if reused and attempt == 0:
                    continue
                raise
            if close:
                self.close()
            return raw
        raise ConnectionError("unreachable")

    def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = self._stream = None

