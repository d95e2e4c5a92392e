"""The storage retry schedule: the waits, Retry-After, and the policies every client gets.

How the clients follow it on the wire is tests/faults/test_storage_retry.py (real Azurite).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from batchfx.core.settings import Settings
from batchfx.storage import Storage
from batchfx.storage.blobs import BlobRetry
from batchfx.storage.clients import retry_after_s, retry_wait_s, table_retry_options
from batchfx.storage.queues import QueueRetry

_CONN = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
         "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;"
         "QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;"
         "TableEndpoint=http://127.0.0.1:1/devstoreaccount1;")
_RETRY = Settings(storage_retry_total=7, storage_retry_backoff_s=0.5,
                  storage_retry_backoff_max_s=12.0)


@pytest.mark.parametrize(("retry", "nominal"), [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0)])
def test_waits_double_from_the_first_backoff_within_20_percent(retry: int,
                                                               nominal: float) -> None:
    waits = [retry_wait_s(retry, 2.0, 100.0) for _ in range(200)]
    assert all(0.8 * nominal <= w <= 1.2 * nominal for w in waits)
    assert len(set(waits)) > 1  # jittered


def test_waits_never_exceed_the_max() -> None:
    assert all(retry_wait_s(n, 1.0, 5.0) <= 5.0 for n in range(1, 200))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"x-ms-retry-after-ms": "1500"}, 1.5),
        ({"Retry-After": "-4"}, 0.0),
        ({}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "nan"}, None),
    ],
)
def test_retry_after_is_read_from_the_reply_headers(headers: dict[str, str],
                                                    expected: float | None) -> None:
    assert retry_after_s(headers) == expected


def test_retry_after_as_an_http_date_is_the_time_until_then() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = retry_after_s({"Retry-After": when})
    assert seconds is not None and 25 <= seconds <= 30


class _Reply:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class _Try:
    """What the storage SDK keeps per failed try in ``settings["history"]``."""

    def __init__(self, reply: _Reply | None) -> None:
        self.http_response = reply


@pytest.mark.parametrize("policy", [BlobRetry, QueueRetry])
def test_storage_policy_waits_by_the_retry_count_unless_the_reply_asks(policy: Any) -> None:
    retry = policy.from_settings(_RETRY)
    plain = retry.get_backoff_time({"count": 3, "history": [_Try(_Reply({}))]})
    assert 0.8 * 2.0 <= plain <= 1.2 * 2.0  # 0.5 s doubled twice
    dropped = retry.get_backoff_time({"count": 1, "history": [_Try(None)]})
    assert 0.8 * 0.5 <= dropped <= 1.2 * 0.5
    asked = retry.get_backoff_time({"count": 3, "history": [_Try(_Reply({"Retry-After": "7"}))]})
    assert asked == 7.0
    # An hour asked for is a minute waited (storage_retry_backoff_max_s is 12 s here).
    hour = retry.get_backoff_time({"count": 1, "history": [_Try(_Reply({"Retry-After":
                                                                        "3600"}))]})
    assert hour == 60.0


@pytest.mark.parametrize("policy", [BlobRetry, QueueRetry])
def test_storage_policy_counts_every_kind_of_failure_against_the_total(policy: Any) -> None:
    retry = policy.from_settings(_RETRY)
    assert (retry.total_retries, retry.connect_retries, retry.read_retries,
            retry.status_retries) == (7, 7, 7, 7)


def test_table_options_make_the_second_retry_wait_the_first_backoff() -> None:
    options = table_retry_options(_RETRY)
    assert options == {"retry_total": 7, "retry_connect": 7, "retry_read": 7, "retry_status": 7,
                       "retry_backoff_factor": 0.25, "retry_backoff_max": 12.0}


def _retry_policies(storage: Storage) -> list[Any]:
    blob: BlobServiceClient = storage.blobs._service
    queue: QueueServiceClient = storage.queues._service
    table: TableServiceClient = storage.tables._service
    (table_policy,) = [p for p in table._policies if type(p).__name__ == "TablesRetryPolicy"]
    return [blob._config.retry_policy, queue._config.retry_policy, table_policy]


@pytest.mark.parametrize("settings", [replace(_RETRY, connection_string=_CONN),
                                      replace(_RETRY, account_name="prodacct")],
                         ids=["connection-string", "identity"])
def test_every_client_gets_the_configured_retries(settings: Settings) -> None:
    storage = Storage.from_settings(settings)  # builds the clients, makes no request
    blob, queue, table = _retry_policies(storage)
    assert isinstance(blob, BlobRetry) and isinstance(queue, QueueRetry)
    for policy in (blob, queue):
        assert (policy.total_retries, policy.backoff_s, policy.backoff_max_s) == (7, 0.5, 12.0)
    assert (table.total_retries, table.status_retries, table.backoff_factor,
            table.backoff_max) == (7, 7, 0.25, 12.0)
