"""The storage_retry_* settings, as the SDK clients batchfx builds follow them against a real
Azurite behind the fault proxy: when they retry, how long they wait, and when they stop.

Bounds are generous (jitter is ±20 %, and other tests share the machine); each one still
tells the configured wait from the SDK defaults' (15-21 s before a blob/queue retry).
"""

from __future__ import annotations

import time
import uuid

import pytest
from proxy import FaultProxy

from batchfx.core.errors import StorageError
from batchfx.core.settings import Settings
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite

SERVICES = ["blob", "queue", "table"]


def _storage(proxy: FaultProxy, name: str, **env: str) -> Storage:
    """Storage through the proxy, configured from app settings as in production."""
    settings = Settings.from_env({
        "AzureWebJobsStorage": proxy.connection_string,
        "BATCHFX_JOBS_CONTAINER": name,
        "BATCHFX_QUEUE_NAME": name,
        "BATCHFX_JOBS_TABLE": f"{name}jobs",
        "BATCHFX_MINIBATCHES_TABLE": f"{name}mb",
        **env,
    })
    storage = Storage.from_settings(settings)
    storage.ensure_resources()
    return storage


def _one_call(storage: Storage, service: str) -> None:
    """One storage call that makes one request to ``service``."""
    s = storage.settings
    if service == "blob":
        storage.blobs.upload(s.jobs_container, f"{uuid.uuid4().hex}.txt", b"x")
    elif service == "queue":
        storage.queues.send(s.queue_name, "x")
    else:
        storage.tables.insert(s.jobs_table, {"PartitionKey": "p", "RowKey": uuid.uuid4().hex})


def _seconds(storage: Storage, service: str) -> float:
    began = time.monotonic()
    _one_call(storage, service)
    return time.monotonic() - began


@pytest.mark.parametrize("service", SERVICES)
def test_a_503_is_retried_after_the_configured_backoff(fault_proxy: FaultProxy,
                                                       unique_name: str, service: str) -> None:
    storage = _storage(fault_proxy, unique_name, BATCHFX_STORAGE_RETRY_BACKOFF_S="1.5")
    # The table SDK retries its first failure at once and waits from the second on.
    faults = 2 if service == "table" else 1
    fault_proxy.set_rates(service, error_503=1.0, limit=faults)
    took = _seconds(storage, service)
    assert fault_proxy.faults[(service, "error_503")] == faults
    assert 1.0 <= took < 6.0, f"the retry came after {took:.2f}s, configured 1.5s (±20 %)"


@pytest.mark.parametrize("service", SERVICES)
def test_retry_after_from_the_service_wins_over_the_backoff(fault_proxy: FaultProxy,
                                                            unique_name: str,
                                                            service: str) -> None:
    storage = _storage(fault_proxy, unique_name, BATCHFX_STORAGE_RETRY_BACKOFF_S="20")
    fault_proxy.retry_after_s = 0.25
    fault_proxy.set_rates(service, error_503=1.0, limit=2)
    took = _seconds(storage, service)
    assert fault_proxy.faults[(service, "error_503")] == 2
    assert 0.4 <= took < 8.0, f"two retries took {took:.2f}s: Retry-After asked 0.25s each"


def test_backoff_max_caps_every_wait(fault_proxy: FaultProxy, unique_name: str) -> None:
    storage = _storage(fault_proxy, unique_name, BATCHFX_STORAGE_RETRY_BACKOFF_S="1",
                       BATCHFX_STORAGE_RETRY_BACKOFF_MAX_S="1")
    fault_proxy.set_rates("blob", error_503=1.0, limit=3)
    took = _seconds(storage, "blob")
    # Capped: about 1 + 1 + 1 s; doubling would have waited about 1 + 2 + 4 s.
    assert 2.4 <= took < 5.0, f"three retries took {took:.2f}s"


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("retries", [0, 2])
def test_retry_total_is_the_number_of_retries_before_the_error(fault_proxy: FaultProxy,
                                                               unique_name: str, service: str,
                                                               retries: int) -> None:
    storage = _storage(fault_proxy, unique_name, BATCHFX_STORAGE_RETRY_TOTAL=str(retries),
                       BATCHFX_STORAGE_RETRY_BACKOFF_S="0.05")
    fault_proxy.set_rates(service, error_503=1.0)
    with pytest.raises(StorageError, match=r"ServerBusy|Service Unavailable"):
        _one_call(storage, service)
    assert fault_proxy.faults[(service, "error_503")] == 1 + retries
