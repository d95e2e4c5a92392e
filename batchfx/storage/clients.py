"""Building Azure Storage service clients from settings (never at import time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from batchfx.errors import ConflictError, StorageError, StorageNotFoundError
from batchfx.settings import Settings

__all__ = ["credential_for", "sdk_errors", "service_url"]


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
