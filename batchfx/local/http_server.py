"""Serving the app's HTTP functions the way the Functions host does (routes under /api)."""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from batchfx.local.bindings import triggered

__all__ = ["FunctionsHttpServer", "HttpRoute", "call_function", "http_routes", "shared_loop"]

logger = logging.getLogger(__name__)

ROUTE_PREFIX = "/api/"
DURABLE_PREFIX = "/runtime/webhooks/durabletask/"
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # the functions refuse bodies over 1 MiB themselves
IDLE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP-triggered function: its route template as a regex, methods and auth level."""

    name: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    anonymous: bool
    function: Callable[..., Any]
    trigger_arg: str
    client_arg: str | None


def _route_regex(route: str) -> re.Pattern[str]:
    # "jobs/{job_id}" -> ^jobs/(?P<job_id>[^/]+)$ (constraints like {id:int} ignored)
    parts = re.split(r"(\{[^}]+\})", route.strip("/"))
    regex = "".join(
        f"(?P<{p[1:-1].split(':')[0].rstrip('?')}>[^/]+)" if p.startswith("{") else re.escape(p)
        for p in parts)
    return re.compile(f"^{regex}$")


def http_routes(app: func.FunctionRegister) -> list[HttpRoute]:
    """The app's HTTP functions, from the same metadata the host indexes."""
    routes = []
    for fn in triggered(app, "httpTrigger"):
        info = fn.trigger
        methods = frozenset(str(getattr(m, "value", m)).upper() for m in info.get("methods") or
                            ["GET", "POST", "PUT", "DELETE", "PATCH"])
        level = str(getattr(info.get("authLevel"), "value", info.get("authLevel")))
        routes.append(HttpRoute(fn.name, _route_regex(info.get("route") or fn.name),
                                methods, level == "anonymous", fn.user_function,
                                info["name"], fn.durable_client))
    return routes


class FunctionsHttpServer:
    """A threaded HTTP server calling the app's HTTP functions with real ``HttpRequest``s."""

    def __init__(self, app: func.FunctionRegister, *, host: str = "127.0.0.1", port: int = 0,
                 function_key: str | None = None,
                 durable: Any | None = None) -> None:
        self._routes = http_routes(app)
        self._key = function_key
        self._durable = durable
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                logger.debug("http: " + fmt, *args)

            # A connection idle this long (a client that went away half-open) is closed.
            timeout = IDLE_TIMEOUT_S

            def _handle(self) -> None:
                headers = dict(self.headers.items())
                refused: tuple[int, dict[str, str], bytes] | None
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    if length < 0:
                        raise ValueError(length)
                except ValueError:
                    length = 0
                    refused = _error(400, "Content-Length is not a byte count")
                else:
                    # Refused before the body is read: no key, no route, or too large.
                    refused = server.check(self.command, self.path, headers, length)
                if refused is not None:
                    self.close_connection = True  # its body, if any, is left unread
                    status, answer_headers, payload = refused
                else:
                    body = self.rfile.read(length) if length else b""
                    status, answer_headers, payload = server.dispatch(self.command, self.path,
                                                                      headers, body)
                self.send_response(status)
                for key, value in answer_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:7071``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        # serve_forever looks for shutdown() between polls: 0.5 s by default, which every
        # `batchfx run` waited at its end.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="batchfx-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()


    def _authorized(self, headers: dict[str, str], query: dict[str, str]) -> bool:
        if not self._key:
            return True
        # Header names are case-insensitive (X-FUNCTIONS-KEY is the same header).
        named = {k.lower(): v for k, v in headers.items()}
        given = named.get("x-functions-key") or query.get("code", "")
        return hmac.compare_digest(given.encode(), self._key.encode())

    def check(self, method: str, raw_path: str, headers: dict[str, str],
              length: int) -> tuple[int, dict[str, str], bytes] | None:
        """What to answer without reading the body (a missing key, an unknown route, a body
        over MAX_REQUEST_BYTES), or None to read it and dispatch."""
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query))
        refused: tuple[int, dict[str, str], bytes] | None = None
        if self._durable is not None and parts.path.startswith("/durabletask/"):
            pass  # the app's own calls, checked by their token path
        elif parts.path.startswith(DURABLE_PREFIX):
            if not self._authorized(headers, query):
                refused = _error(401, "missing or wrong key: the Durable webhook takes the "
                                      "app's key (x-functions-key header or code parameter)")
        elif parts.path.startswith(ROUTE_PREFIX):
            path = parts.path[len(ROUTE_PREFIX):].strip("/")
            routes = [r for r in self._routes if r.pattern.match(path)
                      and method.upper() in r.methods]
            if routes and not routes[0].anonymous and not self._authorized(headers, query):
                refused = _error(401, "missing or wrong function key: send it as the "
                                      "x-functions-key header or the code query parameter")
        if refused is None and length > MAX_REQUEST_BYTES:
            refused = _error(413, f"request body is {length} bytes; at most {MAX_REQUEST_BYTES}")
        return refused

    def dispatch(self, method: str, raw_path: str, headers: dict[str, str],
                 body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Route one request; returns (status, headers, body)."""
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query))
        if self._durable is not None:
            # The extension's RPC endpoint: the host serves it to its own worker alone, with
            # no key; here, under a path only the app's client bindings hold.
            rpc = parts.path.startswith(f"/durabletask/{self._durable.rpc_token}/")
            if parts.path.startswith(DURABLE_PREFIX) and not self._authorized(headers, query):
                return _error(401, "missing or wrong key: the Durable webhook takes the app's "
                                   "key (x-functions-key header or code parameter)")
            if rpc or parts.path.startswith(DURABLE_PREFIX):
                status, payload = self._durable.handle_http(method, parts.path, query, body)
                data = b"" if payload is None else json.dumps(payload).encode()
                return status, {"Content-Type": "application/json"}, data
        if not parts.path.startswith(ROUTE_PREFIX):
            return _error(404, f"no function at {parts.path}")
        path = parts.path[len(ROUTE_PREFIX):].strip("/")
        matched = [(r, m) for r in self._routes if (m := r.pattern.match(path))]
        if not matched:
            return _error(404, f"no function at {parts.path}")
        allowed = [(r, m) for r, m in matched if method.upper() in r.methods]
        if not allowed:
            return _error(405, f"{method} is not allowed on {parts.path}")
        route, match = allowed[0]
        if not route.anonymous and not self._authorized(headers, query):
            return _error(401, "missing or wrong function key: send it as the x-functions-key "
                               "header or the code query parameter")
        request = func.HttpRequest(method=method.upper(), url=f"{self.url}{raw_path}",
                                   headers=headers, params=query,
                                   route_params={k: unquote(v) for k, v in
                                                 match.groupdict().items()}, body=body)
        kwargs: dict[str, Any] = {route.trigger_arg: request}
        if route.client_arg and self._durable is not None:
            kwargs[route.client_arg] = self._durable.client_binding(self.url)
        try:
            result = call_function(route.function, kwargs)
        except Exception:
            logger.exception("function %s failed", route.name)
            return _error(500, f"function {route.name} failed; see the runner's log")
        response: func.HttpResponse = result
        out_headers = dict(response.headers)
        out_headers.setdefault("Content-Type", response.mimetype or "text/plain")
        return response.status_code, out_headers, response.get_body()


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def shared_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process for async functions, as the host's worker has.

    The Durable SDK's client keeps one aiohttp session per process, bound to the loop
    that first used it, so every server in the process must share the loop.
    """
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="batchfx-async",
                             daemon=True).start()
        return _loop


async def _await(awaitable: Any) -> Any:
    return await awaitable


def call_function(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Call an app function as the host does; an async one runs on the shared loop."""
    result = function(**kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run_coroutine_threadsafe(_await(result), shared_loop()).result()
    return result


def _error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps({"error": message}).encode()
