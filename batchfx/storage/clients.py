"""Building Azure Storage service clients from settings (never at import time).

Every client retries a failed call (503 ServerBusy, 500, a dropped connection) on the
schedule the ``storage_retry_*`` settings give: the first retry after
``storage_retry_backoff_s``, each later wait doubled up to ``storage_retry_backoff_max_s``,
jittered, ``storage_retry_total`` retries in all; a ``Retry-After`` the service sends wins
(up to a minute, or ``storage_retry_backoff_max_s`` when that is longer).
The table SDK (azure-core's RetryPolicy) retries the first failure at once and then waits
the same doubling series; it honours ``Retry-After`` itself.
"""

from __future__ import annotations

import math
import random
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import RequestsTransport

from batchfx.core.errors import ConflictError, StorageError, StorageNotFoundError
from batchfx.core.settings import Settings

__all__ = [
    "RETRY_AFTER_MAX_S",
    "BackoffRetry",
    "client_transport",
    "credential_for",
    "retry_after_s",
    "retry_wait_s",
    "sdk_errors",
    "service_url",
    "table_retry_options",
]

_JITTER = 0.2  # ±20 %: workers that failed together do not all come back together
# The longest Retry-After obeyed (or storage_retry_backoff_max_s when longer).
RETRY_AFTER_MAX_S = 60.0


def retry_wait_s(retry: int, backoff_s: float, backoff_max_s: float) -> float:
    """The wait before retry number ``retry`` (1, 2, …): doubling from ``backoff_s``, jittered,
    never above ``backoff_max_s``."""
    wait = backoff_s * 2.0 ** min(max(retry - 1, 0), 32)
    return min(backoff_max_s, wait * random.uniform(1 - _JITTER, 1 + _JITTER))


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The wait a reply asks for (``Retry-After`` in seconds or as an HTTP date,
    ``retry-after-ms``, ``x-ms-retry-after-ms``), or None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after", 1.0), ("retry-after-ms", 0.001),
                        ("x-ms-retry-after-ms", 0.001)):
        raw = lowered.get(name, "").strip()
        if not raw:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            pass
        else:
            if math.isfinite(seconds):  # "inf" or "nan" would sleep forever or not at all
                return max(0.0, seconds)
            continue
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            continue  # unreadable: fall back to our own schedule
        return max(0.0, (when - datetime.now(when.tzinfo or UTC)).total_seconds())
    return None


class BackoffRetry:
    """Mixed in before the blob or queue SDK's ``ExponentialRetry``: batchfx's schedule
    instead of the SDK's (15 s, then 15 + 3^n s), with ``Retry-After`` honoured.

    The SDK keeps deciding *what* to retry (5xx, 408, timeouts, dropped connections).
    """

    def __init__(self, *, backoff_s: float, backoff_max_s: float, **kwargs: Any) -> None:
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        super().__init__(**kwargs)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The policy the ``storage_retry_*`` settings describe."""
        n = settings.storage_retry_total
        # The SDK stops at the first of these counts to run out: one number governs all.
        return cls(backoff_s=settings.storage_retry_backoff_s,
                   backoff_max_s=settings.storage_retry_backoff_max_s,
                   retry_total=n, retry_connect=n, retry_read=n, retry_status=n)

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        """Seconds to wait before the next retry (``settings["count"]`` is its number)."""
        history = settings.get("history") or []
        reply = getattr(history[-1], "http_response", None) if history else None
        if reply is not None:
            asked = retry_after_s(reply.headers)
            if asked is not None:  # capped: a stray hour-long wait would hang the job
                return min(asked, max(self.backoff_max_s, RETRY_AFTER_MAX_S))
        return retry_wait_s(int(settings["count"]), self.backoff_s, self.backoff_max_s)


def table_retry_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for the table SDK's retry policy (azure-core's RetryPolicy)."""
    n = settings.storage_retry_total
    # azure-core waits 0 s before the first retry, then factor * 2^(retry - 1): half the
    # first wait as the factor makes the second retry wait storage_retry_backoff_s.
    return {"retry_total": n, "retry_connect": n, "retry_read": n, "retry_status": n,
            "retry_backoff_factor": settings.storage_retry_backoff_s / 2,
            "retry_backoff_max": settings.storage_retry_backoff_max_s}


class _Transport(RequestsTransport):  # type: ignore[misc]  # re-exported lazily: Any to mypy
    """azure-core's requests transport, minus a per-request scan of the environment.

    requests looks for proxy variables in the whole environment on every request (an eighth
    of a storage call's CPU in a profile). Where no proxy is configured when the client is
    built, the session is told not to look again; where one is, nothing changes.
    """

    def _init_session(self, session: requests.Session) -> None:
        super()._init_session(session)
        if not any(urllib.request.getproxies().values()):
            session.trust_env = False


def client_transport() -> RequestsTransport:
    """The HTTP transport of one storage service client."""
    return _Transport()


def service_url(settings: Settings, service: str) -> str:
    """The endpoint of ``blob``/``queue``/``table`` for identity-based connections."""
    if not settings.account_name:
        raise StorageError(
            "no storage configured: set AzureWebJobsStorage to a connection string, "
            "or AzureWebJobsStorage__accountName for a managed-identity connection"
        )
    return f"https://{settings.account_name}.{service}.core.windows.net"


def credential_for(settings: Settings) -> TokenCredential:
    """A token credential for identity-based connections (azure-identity, imported lazily)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:  # pragma: no cover - depends on an optional package
        raise StorageError(
            "AzureWebJobsStorage__accountName needs the azure-identity package: "
            "pip install azure-identity"
        ) from exc
    credential: TokenCredential = DefaultAzureCredential()
    return credential


@contextmanager
def sdk_errors(what: str) -> Iterator[None]:
    """Turn Azure SDK exceptions into batchfx errors that say what was being done."""
    try:
        yield
    except ResourceNotFoundError as exc:
        raise StorageNotFoundError(f"{what}: not found ({_reason(exc)})") from exc
    except (ResourceModifiedError, ResourceExistsError) as exc:
        raise ConflictError(f"{what}: changed by another writer ({_reason(exc)})") from exc
    except AzureError as exc:
        raise StorageError(f"{what}: {_reason(exc)}") from exc


def _reason(exc: AzureError) -> str:
    # The SDK's message can span many lines of XML; the first line says enough and,
    # unlike str(exc) on some errors, never echoes the request's credentials.
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)  # the SDK gives an enum for some codes, text for others
    first = (str(exc.message or exc).splitlines() or [""])[0]
    return f"{code}: {first}" if code else first
