"""A fault-injecting HTTP/1.1 reverse proxy in front of Azurite's blob, queue and table ports.

The app under test connects through :attr:`FaultProxy.connection_string` (same account
and key, the proxy's ports). Requests are forwarded byte for byte; on a seeded random
schedule, at a rate set per service (and optionally per method/path), a request is
instead answered the way a struggling storage account answers it:

- ``error_500`` / ``error_503``: ``500 InternalError`` / ``503 ServerBusy`` with Azure's
  error body (XML for blob/queue, JSON for table); the request never reaches Azurite.
- ``drop``: the connection is closed before the request is forwarded (not applied).
- ``timeout``: the request *is* forwarded and applied, then the reply is withheld for
  ``stall_s`` and the connection closed: what a client sees when its read times out
  (``ServiceResponseError``), including the ambiguity of a write that did happen.
- ``delay``: the request is held ``stall_s`` before it is forwarded (a latency spike).

Counters: requests per (service, method), faults per (service, kind).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import select
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

__all__ = ["KINDS", "SERVICES", "FaultProxy", "FaultRule"]

SERVICES = ("blob", "queue", "table")
KINDS = ("error_500", "error_503", "drop", "timeout", "delay")
_ACCOUNT = "devstoreaccount1"
_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
        "KBHBeksoGMGw==")
_MESSAGES = {
    "error_500": (500, "Internal Server Error", "InternalError",
                  "The server encountered an internal error. Please retry the request."),
    "error_503": (503, "Service Unavailable", "ServerBusy",
                  "The server is busy. Operations per second is over the account limit; "
                  "retry after some time."),
}


@dataclass(frozen=True)
class FaultRule:
    """Inject ``kind`` into ``rate`` of a service's requests (matching method/path if set)."""

    kind: str
    rate: float
    methods: frozenset[str] | None = None
    path: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: got {self.kind!r} — expected one of {', '.join(KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate: got {self.rate!r} — expected a fraction in [0, 1]")

    def matches(self, method: str, target: str) -> bool:
        """Whether this rule applies to a request line's method and target."""
        if self.methods is not None and method not in self.methods:
            return False
        return self.path is None or bool(self.path.search(target))


@dataclass
class _Request:
    method: str
    target: str
    raw: bytes
    close: bool


class _Closed(Exception):
    """The peer closed the connection between messages."""


def _read_head(stream: BinaryIO) -> list[bytes]:
    lines: list[bytes] = []
    while True:
        line = stream.readline(65537)
        if not line:
            if lines:
                raise ConnectionError("connection closed inside a message head")
            raise _Closed()
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


def _read_request(stream: BinaryIO) -> _Request:
    head = _read_head(stream)
    method, target, version = head[0].decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = _headers(head)
    body = _read_body(stream, headers, until_close=False)
    close = (headers.get("connection", "").lower() == "close"
             or (version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive"))
    return _Request(method.upper(), target, b"".join(head) + body, close)


def _read_response(stream: BinaryIO, method: str) -> tuple[bytes, bool]:
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


def _error_reply(service: str, kind: str, retry_after_s: float | None) -> bytes:
    status, reason, code, text = _MESSAGES[kind]
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


class _Upstream:
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

    def exchange(self, request: _Request) -> bytes:
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
                raw, close = _read_response(self._stream, request.method)
            except (_Closed, ConnectionError, OSError):
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


class FaultProxy:
    """Three loopback listeners (blob, queue, table) forwarding to Azurite, injecting faults.

    ``FaultProxy(upstream_ports, seed=7).start()``; ``set_rates("table", error_503=0.05)``;
    ``requests``/``faults`` counters; ``stop()``.
    """

    def __init__(self, upstream_ports: dict[str, int], *, seed: int = 0,
                 host: str = "127.0.0.1", stall_s: float = 2.0,
                 retry_after_s: float | None = None) -> None:
        missing = [s for s in SERVICES if s not in upstream_ports]
        if missing:
            raise ValueError(f"upstream_ports: missing {', '.join(missing)}")
        self.host = host
        self.stall_s = stall_s
        self.retry_after_s = retry_after_s
        self._upstream = dict(upstream_ports)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._rules: dict[str, list[FaultRule]] = {s: [] for s in SERVICES}
        self.requests: Counter[tuple[str, str]] = Counter()
        self.faults: Counter[tuple[str, str]] = Counter()
        self.upstream_errors: Counter[str] = Counter()
        self._listeners: dict[str, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._clients: set[socket.socket] = set()
        self._running = threading.Event()

    # -- configuration -----------------------------------------------------------------

    def set_rates(self, service: str | None = None, *, methods: Iterable[str] | None = None,
                  path: str | None = None, **rates: float) -> None:
        """Replace the fault rules of ``service`` (None: every service) with ``rates``.

        ``set_rates("queue", error_503=0.05, timeout=0.01)``; with ``methods``/``path``
        the rates apply only to matching requests (``set_rates("queue", methods=["PUT"],
        path="popreceipt=", error_503=1.0)`` fails every message renewal).
        """
        services = SERVICES if service is None else (service,)
        for name in services:
            if name not in SERVICES:
                raise ValueError(f"service: got {name!r} — expected one of {SERVICES}")
        wanted = frozenset(m.upper() for m in methods) if methods is not None else None
        pattern = re.compile(path) if path is not None else None
        rules = [FaultRule(kind, rate, wanted, pattern) for kind, rate in rates.items() if rate]
        with self._lock:
            for name in services:
                self._rules[name] = list(rules)

    def add_rates(self, service: str, *, methods: Iterable[str] | None = None,
                  path: str | None = None, **rates: float) -> None:
        """Add fault rules to ``service`` next to the ones it has."""
        wanted = frozenset(m.upper() for m in methods) if methods is not None else None
        pattern = re.compile(path) if path is not None else None
        with self._lock:
            self._rules[service] += [FaultRule(kind, rate, wanted, pattern)
                                     for kind, rate in rates.items() if rate]

    def clear(self) -> None:
        """No more faults; requests are only forwarded."""
        with self._lock:
            self._rules = {s: [] for s in SERVICES}

    # -- figures -------------------------------------------------------------------------

    def faults_by_kind(self) -> dict[str, int]:
        """Faults injected so far, per kind over all services."""
        with self._lock:
            out: Counter[str] = Counter()
            for (_, kind), n in self.faults.items():
                out[kind] += n
            return dict(out)

    def summary(self) -> str:
        """One line: requests and faults per service."""
        with self._lock:
            parts = []
            for service in SERVICES:
                total = sum(n for (s, _), n in self.requests.items() if s == service)
                faults = {k: n for (s, k), n in self.faults.items() if s == service}
                shown = " ".join(f"{k}={v}" for k, v in sorted(faults.items())) or "none"
                parts.append(f"{service}: {total} requests, faults {shown}")
            return "; ".join(parts)

    @property
    def ports(self) -> dict[str, int]:
        """The proxy's listening port per service."""
        return {s: int(sock.getsockname()[1]) for s, sock in self._listeners.items()}

    @property
    def connection_string(self) -> str:
        """The development account's connection string, pointing at the proxy."""
        p = self.ports
        return (f"DefaultEndpointsProtocol=http;AccountName={_ACCOUNT};AccountKey={_KEY};"
                f"BlobEndpoint=http://{self.host}:{p['blob']}/{_ACCOUNT};"
                f"QueueEndpoint=http://{self.host}:{p['queue']}/{_ACCOUNT};"
                f"TableEndpoint=http://{self.host}:{p['table']}/{_ACCOUNT};")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen on free loopback ports, one per service."""
        self._running.set()
        for service in SERVICES:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, 0))
            sock.listen(128)
            self._listeners[service] = sock
            thread = threading.Thread(target=self._accept, args=(service, sock),
                                      name=f"fault-proxy-{service}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection."""
        self._running.clear()
        for sock in self._listeners.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- serving -------------------------------------------------------------------------

    def _accept(self, service: str, listener: socket.socket) -> None:
        while self._running.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.add(client)
            threading.Thread(target=self._serve, args=(service, client),
                             name=f"fault-proxy-{service}-conn", daemon=True).start()

    def _choose(self, service: str, request: _Request) -> str | None:
        with self._lock:
            self.requests[(service, request.method)] += 1
            for rule in self._rules[service]:
                if rule.matches(request.method, request.target) and \
                        self._random.random() < rule.rate:
                    self.faults[(service, rule.kind)] += 1
                    return rule.kind
        return None

    def _serve(self, service: str, client: socket.socket) -> None:
        upstream = _Upstream((self.host if self.host != "0.0.0.0" else "127.0.0.1",
                              self._upstream[service]))
        stream = client.makefile("rb")
        try:
            while self._running.is_set():
                try:
                    request = _read_request(stream)
                except (_Closed, ConnectionError, OSError, ValueError):
                    return
                kind = self._choose(service, request)
                if kind == "drop":
                    return
                if kind in ("error_500", "error_503"):
                    client.sendall(_error_reply(service, kind, self.retry_after_s))
                    if request.close:
                        return
                    continue
                if kind == "delay":
                    time.sleep(self.stall_s)
                try:
                    raw = upstream.exchange(request)
                except (_Closed, ConnectionError, OSError):
                    # Azurite is down or restarting: the client sees its connection drop.
                    with self._lock:
                        self.upstream_errors[service] += 1
                    return
                if kind == "timeout":
                    time.sleep(self.stall_s)
                    return
                client.sendall(raw)
                if request.close:
                    return
        except OSError:
            return
        finally:
            upstream.close()
            with contextlib.suppress(OSError):
                stream.close()
            with contextlib.suppress(OSError):
                client.close()
            with self._lock:
                self._clients.discard(client)
