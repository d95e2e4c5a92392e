"""App settings, read from a mapping (the process environment in production, a dict in tests)."""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Settings"]

_DEFAULT_WORK_DIR = os.path.join(tempfile.gettempdir(), "batchfx")
_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")


def _float(env: Mapping[str, str], key: str, default: float, unit: str = "seconds", *,
           minimum: float | None = None) -> float:
    """A positive number (``minimum``: at least that, 0 allowed)."""
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"setting {key}: got {raw!r} — expected a number of {unit}") from None
    if minimum is not None:
        if not math.isfinite(value) or value < minimum:
            raise ValueError(f"setting {key}: got {raw!r} — expected a number of {unit}, "
                             f"at least {minimum:g}")
        return value
    if not math.isfinite(value) or value <= 0:  # nan would pass `<= 0`, then break sleep()
        raise ValueError(f"setting {key}: got {raw!r} — expected a number greater than 0")
    return value


def _retries(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"setting {key}: got {raw!r} — expected a whole number of retries "
                         "(0 turns retries off)") from None
    if value < 0:
        raise ValueError(f"setting {key}: got {raw!r} — expected 0 or more retries")
    return value


def _at_least_one(env: Mapping[str, str], key: str, default: int, unit: str) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"setting {key}: got {raw!r} — expected a whole number of {unit} "
                         f"(1 or more; unset it for the default, {default})") from None
    if value < 1:
        raise ValueError(f"setting {key}: got {raw!r} — expected 1 or more {unit}")
    return value


def _local_roots(raw: str) -> tuple[str, ...]:
    roots = tuple(r for r in raw.split(os.pathsep) if r)
    relative = [r for r in roots if not os.path.isabs(r)]
    if relative:
        raise ValueError(f"setting BATCHFX_LOCAL_ROOTS: {relative[0]!r} is not an absolute path "
                         f"— expected absolute folders separated by {os.pathsep!r}")
    return roots


def _vault_url(raw: str) -> str:
    if raw and not raw.startswith("https://"):
        raise ValueError(f"setting BATCHFX_KEY_VAULT_URL: got {raw!r} — expected the vault's "
                         "URL, e.g. https://my-vault.vault.azure.net/")
    return raw


def _absolute(env: Mapping[str, str], key: str) -> str:
    raw = env.get(key, "")
    if raw and not os.path.isabs(raw):
        raise ValueError(f"setting {key}: got {raw!r} — expected an absolute path")
    return raw


@dataclass(frozen=True)
class Settings:
    """Where batchfx keeps its state and how often it looks at it."""

    connection_string: str | None = field(default=None, repr=False)  # holds the account key
    account_name: str | None = None
    # A second account for job data (inputs, code and models named by container, outputs):
    # every container but the app's own (``is_app_container``) is there. An account name,
    # reached with the app's identity, or a connection string.
    data_account: str | None = None
    data_connection_string: str | None = field(default=None, repr=False)
    jobs_container: str = "batchfx"
    queue_name: str = "batchfx-minibatches"
    jobs_table: str = "batchfxjobs"
    minibatches_table: str = "batchfxminibatches"
    inbox_container: str = "inbox"
    # Where a deployment without an output writes (Azure ML's default datastore):
    # <outputs container>/<endpoint>/<deployment>/<job id>/.
    outputs_container: str = "outputs"
    allowed_containers: tuple[str, ...] = ()  # empty: any container of the account
    poll_interval_s: float = 5.0
    lease_margin_s: float = 60.0
    work_dir: str = _DEFAULT_WORK_DIR
    # The work folder's shared caches (models and side inputs fetched from storage, model
    # layouts) are trimmed to this, least recently used first, never what a running job
    # uses; 0: no budget.
    work_dir_max_mb: float = 10240.0
    # How the Azure SDK clients retry a failed storage call (503 ServerBusy, 500, a dropped
    # connection): the SDKs' own defaults wait 15-21 s before the first blob/queue retry.
    storage_retry_total: int = 5
    storage_retry_backoff_s: float = 1.0
    storage_retry_backoff_max_s: float = 30.0
    # Formatted rows one run() may return for one mini-batch (they pass through memory).
    max_output_mb: float = 1024.0
    # Mini-batches queued and unfinished that make partitioning wait: a longer queue gains
    # nothing (workers take one at a time) and slows Azurite's dequeues, which scan it.
    queue_window: int = 2000
    # Local folders (absolute paths) that job specs may name to be read in place: the local
    # runner's; empty in Azure, where a job reads only the storage account.
    local_roots: tuple[str, ...] = ()
    # Where a script's ``get_secret`` reads (azureml.core's workspace Key Vault): an Azure Key
    # Vault (its URL; the app's managed identity reads it), else a local secrets file (JSON
    # or KEY=VALUE lines).
    key_vault_url: str = ""
    secrets_file: str = ""
    # Where script environments' packages come from (pip's --index-url; --find-links
    # folders or URLs, comma-separated): a private index, or wheels shipped with the app.
    pip_index_url: str = ""
    pip_find_links: tuple[str, ...] = ()

    @property
    def separate_data(self) -> bool:
        """Whether job data lives in an account of its own (``BATCHFX_DATA_ACCOUNT``)."""
        return bool(self.data_account or self.data_connection_string)

    def is_app_container(self, name: str) -> bool:
        """The app's own containers, always in the app's account (AzureWebJobsStorage): its
        state, the local Durable store, the inbox blob drops land in, the host's."""
        return (name in (self.jobs_container, f"{self.jobs_container}-durable",
                         self.inbox_container) or name.startswith("azure-webjobs-"))

    def account_of(self, container: str) -> str:
        """Which account ``container`` is in, in words (for messages)."""
        if not self.separate_data or self.is_app_container(container):
            return "the app's storage account"
        return f"the data storage account ({self.data_account or 'BATCHFX_DATA_CONNECTION_STRING'})"

    @property
    def poison_queue_name(self) -> str:
        """The queue the Functions host moves a message to after maxDequeueCount failures."""
        return f"{self.queue_name}-poison"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read settings from a mapping such as ``os.environ``."""
        connection_string = env.get("AzureWebJobsStorage") or None
        account_name = env.get("AzureWebJobsStorage__accountName") or None
        backoff_s = _float(env, "BATCHFX_STORAGE_RETRY_BACKOFF_S", cls.storage_retry_backoff_s)
        backoff_max_s = _float(env, "BATCHFX_STORAGE_RETRY_BACKOFF_MAX_S",
                               max(backoff_s, cls.storage_retry_backoff_max_s))
        if backoff_max_s < backoff_s:
            raise ValueError(
                "setting BATCHFX_STORAGE_RETRY_BACKOFF_MAX_S: got "
                f"{env['BATCHFX_STORAGE_RETRY_BACKOFF_MAX_S']!r} — expected at least "
                f"BATCHFX_STORAGE_RETRY_BACKOFF_S ({backoff_s:g} s)")
        data_account = env.get("BATCHFX_DATA_ACCOUNT", "").strip() or None
        data_connection_string = env.get("BATCHFX_DATA_CONNECTION_STRING") or None
        if data_account and data_connection_string:
            raise ValueError("settings BATCHFX_DATA_ACCOUNT and BATCHFX_DATA_CONNECTION_STRING "
                             "are both set — set one: the data account's name (reached with "
                             "the app's identity) or its connection string")
        if data_account and not _ACCOUNT_NAME.fullmatch(data_account):
            raise ValueError(f"setting BATCHFX_DATA_ACCOUNT: got {data_account!r} — expected a "
                             "storage account name (3-24 lowercase letters and digits)")
        return cls(
            connection_string=connection_string,
            account_name=account_name,
            data_account=data_account,
            data_connection_string=data_connection_string,
            jobs_container=env.get("BATCHFX_JOBS_CONTAINER") or cls.jobs_container,
            queue_name=env.get("BATCHFX_QUEUE_NAME") or cls.queue_name,
            jobs_table=env.get("BATCHFX_JOBS_TABLE") or cls.jobs_table,
            minibatches_table=env.get("BATCHFX_MINIBATCHES_TABLE") or cls.minibatches_table,
            inbox_container=env.get("BATCHFX_INBOX_CONTAINER") or cls.inbox_container,
            outputs_container=env.get("BATCHFX_OUTPUTS_CONTAINER") or cls.outputs_container,
            allowed_containers=tuple(
                c.strip() for c in env.get("BATCHFX_ALLOWED_CONTAINERS", "").split(",")
                if c.strip()),
            poll_interval_s=_float(env, "BATCHFX_POLL_INTERVAL_S", cls.poll_interval_s),
            lease_margin_s=_float(env, "BATCHFX_LEASE_MARGIN_S", cls.lease_margin_s),
            # Absolute: script processes run in their code folder, not the worker's.
            work_dir=os.path.abspath(env.get("BATCHFX_WORK_DIR") or _DEFAULT_WORK_DIR),
            work_dir_max_mb=_float(env, "BATCHFX_WORK_DIR_MAX_MB", cls.work_dir_max_mb, "MiB",
                                   minimum=0.0),
            storage_retry_total=_retries(env, "BATCHFX_STORAGE_RETRY_TOTAL",
                                         cls.storage_retry_total),
            storage_retry_backoff_s=backoff_s,
            storage_retry_backoff_max_s=backoff_max_s,
            max_output_mb=_float(env, "BATCHFX_MAX_MINI_BATCH_OUTPUT_MB", cls.max_output_mb,
                                 "MiB"),
            queue_window=_at_least_one(env, "BATCHFX_QUEUE_WINDOW", cls.queue_window,
                                       "mini-batches"),
            local_roots=_local_roots(env.get("BATCHFX_LOCAL_ROOTS", "")),
            key_vault_url=_vault_url(env.get("BATCHFX_KEY_VAULT_URL", "")),
            secrets_file=_absolute(env, "BATCHFX_SECRETS_FILE"),
            pip_index_url=env.get("BATCHFX_PIP_INDEX_URL", "").strip(),
            pip_find_links=tuple(v.strip() for v in env.get("BATCHFX_PIP_FIND_LINKS",
                                                            "").split(",") if v.strip()),
        )

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` give these settings back (worker processes)."""
        env = {
            "BATCHFX_JOBS_CONTAINER": self.jobs_container,
            "BATCHFX_QUEUE_NAME": self.queue_name,
            "BATCHFX_JOBS_TABLE": self.jobs_table,
            "BATCHFX_MINIBATCHES_TABLE": self.minibatches_table,
            "BATCHFX_INBOX_CONTAINER": self.inbox_container,
            "BATCHFX_OUTPUTS_CONTAINER": self.outputs_container,
            "BATCHFX_ALLOWED_CONTAINERS": ",".join(self.allowed_containers),
            "BATCHFX_POLL_INTERVAL_S": str(self.poll_interval_s),
            "BATCHFX_LEASE_MARGIN_S": str(self.lease_margin_s),
            "BATCHFX_WORK_DIR": self.work_dir,
            "BATCHFX_WORK_DIR_MAX_MB": str(self.work_dir_max_mb),
            "BATCHFX_STORAGE_RETRY_TOTAL": str(self.storage_retry_total),
            "BATCHFX_STORAGE_RETRY_BACKOFF_S": str(self.storage_retry_backoff_s),
            "BATCHFX_STORAGE_RETRY_BACKOFF_MAX_S": str(self.storage_retry_backoff_max_s),
            "BATCHFX_MAX_MINI_BATCH_OUTPUT_MB": str(self.max_output_mb),
            "BATCHFX_QUEUE_WINDOW": str(self.queue_window),
            "BATCHFX_LOCAL_ROOTS": os.pathsep.join(self.local_roots),
            "BATCHFX_KEY_VAULT_URL": self.key_vault_url,
            "BATCHFX_SECRETS_FILE": self.secrets_file,
            "BATCHFX_PIP_INDEX_URL": self.pip_index_url,
            "BATCHFX_PIP_FIND_LINKS": ",".join(self.pip_find_links),
        }
        if self.connection_string:
            env["AzureWebJobsStorage"] = self.connection_string
        if self.account_name:
            env["AzureWebJobsStorage__accountName"] = self.account_name
        if self.data_account:
            env["BATCHFX_DATA_ACCOUNT"] = self.data_account
        if self.data_connection_string:
            env["BATCHFX_DATA_CONNECTION_STRING"] = self.data_connection_string
        return env
