"""What a scoring script process may not hold, and the secrets the worker reads for it.

The script process gets the worker's environment without any credential (the storage
connection string, the managed identity's token endpoint, service principal secrets,
``BATCHFX_SECRET_*``): what a script needs from Azure (its inputs, outputs and secrets) the
worker brokers. ``get_secret(name)`` in the script (azureml.core's Key Vault) is asked of the
worker over the script's pipe and answered here: from the app's Azure Key Vault
(``BATCHFX_KEY_VAULT_URL``, with the app's managed identity), else the local secrets file
(``BATCHFX_SECRETS_FILE``), else the app's ``BATCHFX_SECRET_<NAME>`` environment variable.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from batchfx.core.script_contract import RunInfo

__all__ = ["SECRET_ENV_PREFIX", "answer_secret", "ask_parent", "raise_secret_error", "read_secret",
           "script_environment"]

SECRET_ENV_PREFIX = "BATCHFX_SECRET_"
# Environment variables (also with Azure App Service's APPSETTING_ prefix) a script process
# never gets: a storage account key, the token endpoint of the app's managed identity,
# service principal credentials.
_CREDENTIALS = ("AzureWebJobsStorage", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
                "MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_SECRET",
                "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
                "AZURE_FEDERATED_TOKEN_FILE", "AZURE_PASSWORD", "AZURE_STORAGE_KEY",
                "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN")
_CREDENTIAL_PREFIXES = ("AzureWebJobsStorage__", SECRET_ENV_PREFIX)


def _is_credential(name: str) -> bool:
    bare = name.removeprefix("APPSETTING_")
    return bare in _CREDENTIALS or bare.startswith(_CREDENTIAL_PREFIXES)


def script_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the credentials a script process must not hold."""
    return {k: v for k, v in environ.items() if not _is_credential(k)}


def read_secret(info: RunInfo, name: str, environ: Mapping[str, str] | None = None) -> str:
    """A secret by name (see the module's docstring); KeyError naming where it was looked
    for when it is nowhere. The value is never logged."""
    if not isinstance(name, str) or not name:
        raise ValueError("get_secret: give the secret's name, e.g. get_secret('cog-key')")
    environ = os.environ if environ is None else environ
    if info.key_vault_url:
        return _vault_secret(info.key_vault_url, name)
    if info.secrets_file:
        secrets = _secrets_file(info.secrets_file)
        if name in secrets:
            return secrets[name]
    variable = SECRET_ENV_PREFIX + "".join(c if c.isalnum() else "_" for c in name).upper()
    if variable in environ:
        return environ[variable]
    where = (f"the secrets file {info.secrets_file} (BATCHFX_SECRETS_FILE) or "
             if info.secrets_file else "")
    raise KeyError(f"get_secret({name!r}): no such secret in {where}the environment variable "
                   f"{variable} — add it there, or set BATCHFX_KEY_VAULT_URL to read an Azure "
                   "Key Vault")


_ERRORS: dict[str, type[Exception]] = {"KeyError": KeyError, "OSError": OSError,
                                       "ValueError": ValueError, "RuntimeError": RuntimeError}


def answer_secret(info: RunInfo, name: Any) -> tuple[str, ...]:
    """The worker's reply to a script's ``("secret", name)``: ``("secret", value)``, or
    ``("secret-error", type, message)`` for the script to raise."""
    try:
        return "secret", read_secret(info, str(name))
    except tuple(_ERRORS.values()) as exc:
        kind = next(k for k, t in _ERRORS.items() if isinstance(exc, t))
        return "secret-error", kind, str(exc.args[0]) if exc.args else kind


def ask_parent(conn_in: Connection, conn_out: Connection) -> Callable[[str], str]:
    """In the script process: ``get_secret`` asked of the worker over the script's pipe
    (one at a time: a script's threads share it)."""
    lock = threading.Lock()

    def ask(name: str) -> str:
        with lock:
            conn_out.send(("secret", name))
            reply = conn_in.recv()
        if reply[0] == "secret":
            return str(reply[1])
        raise_secret_error(str(reply[1]), str(reply[2]))
        raise AssertionError("unreachable")
    return ask


def raise_secret_error(kind: str, message: str) -> None:
    """Raise the error the worker answered with, in the script process."""
    raise _ERRORS.get(kind, RuntimeError)(message)


def _secrets_file(path: str) -> dict[str, str]:
    """A JSON object of name -> value, or KEY=VALUE lines (``#`` comments)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise OSError(f"get_secret: cannot read the secrets file {path} "
                      f"(BATCHFX_SECRETS_FILE): {exc.strerror or exc}") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"get_secret: the secrets file {path} is not valid JSON "
                             f"(line {getattr(exc, 'lineno', '?')})") from None
        return {str(k): str(v) for k, v in data.items()}
    secrets = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            secrets[key.strip()] = value.strip().strip('"').strip("'")
    return secrets


def _vault_secret(url: str, name: str) -> str:
    from azure.core.exceptions import AzureError, ResourceNotFoundError
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    client = SecretClient(url, DefaultAzureCredential(exclude_interactive_browser_credential=True))
    try:
        value = client.get_secret(name).value
    except ResourceNotFoundError:
        raise KeyError(f"get_secret({name!r}): no such secret in the Key Vault {url}") from None
    except AzureError as exc:
        raise RuntimeError(f"get_secret({name!r}): reading the Key Vault {url} failed: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    return value or ""
