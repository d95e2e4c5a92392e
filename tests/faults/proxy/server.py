"""The fault proxy: three loopback listeners forwarding to Azurite, and the rules that
decide which requests get a fault instead."""

from __future__ import annotations

import contextlib
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .wire import Closed, Request, Upstream, error_reply, read_request

__all__ = ["KINDS", "SERVICES", "FaultProxy", "FaultRule"]

SERVICES = ("blob", "queue", "table")
KINDS = ("error_500", "error_503", "drop", "timeout", "delay")
_ACCOUNT = "devstoreaccount1"
_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
        "KBHBeksoGMGw==")


@dataclass(frozen=True)
class FaultRule:
    """Inject ``kind`` into ``rate`` of a service's requests (matching method/path if set),
    at most ``limit`` times (None: no limit)."""

    kind: str
    rate: float
    methods: frozenset[str] | None = None
    path: re.Pattern[str] | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: got {self.kind!r} — expected one of {', '.join(KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate: got {self.rate!r} — expected a fraction in [0, 1]")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit: got {self.limit!r} — expected 1 or more faults, or None")

    def matches(self, method: str, target: str) -> bool:
        """Whether this rule applies to a request line's method and target."""
        if self.methods is not None and method not in self.methods:
            return False
        return self.path is None or bool(self.path.search(target))


@dataclass
class _Armed:
    """A rule in force, and how many faults it injected so far."""

    rule: FaultRule
    used: int = 0

    def fires(self, method: str, target: str, draw: random.Random) -> bool:
        """Whether this request gets the fault (a random number is drawn only on a match)."""
        rule = self.rule
        if rule.limit is not None and self.used >= rule.limit:
            return False
        if not rule.matches(method, target) or draw.random() >= rule.rate:
            return False
        self.used += 1
        return True


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
        self._rules: dict[str, list[_Armed]] = {s: [] for s in SERVICES}
        self.requests: Counter[tuple[str, str]] = Counter()
        self.faults: Counter[tuple[str, str]] = Counter()
        self.upstream_errors: Counter[str] = Counter()
        self._listeners: dict[str, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._clients: set[socket.socket] = set()
        self._running = threading.Event()

    # -- configuration -----------------------------------------------------------------

    def set_rates(self, service: str | None = None, *, methods: Iterable[str] | None = None,
                  path: str | None = None, limit: int | None = None, **rates: float) -> None:
        """Replace the fault rules of ``service`` (None: every service) with ``rates``.

        ``set_rates("queue", error_503=0.05, timeout=0.01)``; with ``methods``/``path``
        the rates apply only to matching requests (``set_rates("queue", methods=["PUT"],
        path="popreceipt=", error_503=1.0)`` fails every message renewal); with ``limit``
        each rule stops after that many faults (``set_rates("blob", error_503=1.0,
        limit=1)`` fails the next blob request only).
        """
        services = SERVICES if service is None else (service,)
        for name in services:
            if name not in SERVICES:
                raise ValueError(f"service: got {name!r} — expected one of {SERVICES}")
        wanted = frozenset(m.upper() for m in methods) if methods is not None else None
        pattern = re.compile(path) if path is not None else None
        rules = [FaultRule(kind, rate, wanted, pattern, limit)
                 for kind, rate in rates.items() if rate]
        with self._lock:
            for name in services:  # each service counts its own faults against a limit
                self._rules[name] = [_Armed(rule) for rule in rules]

    def add_rates(self, service: str, *, methods: Iterable[str] | None = None,
                  path: str | None = None, limit: int | None = None, **rates: float) -> None:
        """Add fault rules to ``service`` next to the ones it has."""
        wanted = frozenset(m.upper() for m in methods) if methods is not None else None
        pattern = re.compile(path) if path is not None else None
        with self._lock:
            self._rules[service] += [_Armed(FaultRule(kind, rate, wanted, pattern, limit))
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

    def _choose(self, service: str, request: Request) -> str | None:
        with self._lock:
            self.requests[(service, request.method)] += 1
            for armed in self._rules[service]:
                if armed.fires(request.method, request.target, self._random):
                    self.faults[(service, armed.rule.kind)] += 1
                    return armed.rule.kind
        return None

    def _serve(self, service: str, client: socket.socket) -> None:
        upstream = Upstream((self.host if self.host != "0.0.0.0" else "127.0.0.1",
                              self._upstream[service]))
        stream = client.makefile("rb")
        try:
            while self._running.is_set():
                try:
                    request = read_request(stream)
                except (Closed, ConnectionError, OSError, ValueError):
                    return
                kind = self._choose(service, request)
                if kind == "drop":
                    return
                if kind in ("error_500", "error_503"):
                    client.sendall(error_reply(service, kind, self.retry_after_s))
                    if request.close:
                        return
                    continue
                if kind == "delay":
                    time.sleep(self.stall_s)
                try:
                    raw = upstream.exchange(request)
                except (Closed, ConnectionError, OSError):
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
