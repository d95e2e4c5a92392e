"""batchfx.storage's errors against a real Azurite never show the account key."""

from __future__ import annotations

import base64
import re

import pytest

from batchfx.core.errors import StorageError
from batchfx.core.settings import Settings
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


def account_key(connection_string: str) -> str:
    match = re.search(r"AccountKey=([^;]+)", connection_string)
    assert match, "the Azurite connection string has no AccountKey"
    return match.group(1)


def _row(pk: str = "p1", rk: str = "r1", **values: object) -> dict[str, object]:
    return {"PartitionKey": pk, "RowKey": rk, **values}


def test_error_messages_never_contain_the_account_key(storage: Storage, settings: Settings,
                                                      connection_string: str,
                                                      unique_name: str) -> None:
    key = account_key(connection_string)
    missing = unique_name + "missing"
    failures: list[StorageError] = []
    attempts = [
        lambda: storage.blobs.download(settings.jobs_container, "gone.txt"),
        lambda: storage.blobs.download(missing, "gone.txt"),
        lambda: storage.queues.send(missing, "x"),
        lambda: storage.tables.insert(settings.jobs_table, _row()),
        lambda: storage.tables.insert(settings.jobs_table, _row()),
    ]
    for attempt in attempts:
        try:
            attempt()
        except StorageError as exc:
            failures.append(exc)
    assert len(failures) == 4
    for exc in failures:
        assert key not in str(exc)
        assert key not in repr(exc)


def test_authentication_failure_message_does_not_contain_the_key(settings: Settings,
                                                                  connection_string: str) -> None:
    real_key = account_key(connection_string)
    wrong_key = base64.b64encode(b"not the azurite key, but valid base64").decode()
    wrong = Settings(
        connection_string=connection_string.replace(real_key, wrong_key),
        jobs_container=settings.jobs_container,
    )
    store = Storage.from_settings(wrong)
    with pytest.raises(StorageError) as info:
        store.blobs.upload(settings.jobs_container, "a.txt", b"x")
    assert wrong_key not in str(info.value)
    assert real_key not in str(info.value)
    assert settings.jobs_container in str(info.value)
