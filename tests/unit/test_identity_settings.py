"""Identity-based storage connections (AzureWebJobsStorage__accountName, managed identity)."""

from __future__ import annotations

import pytest

from batchfx.core.errors import StorageError
from batchfx.core.settings import Settings
from batchfx.storage import Storage


def test_account_name_setting_builds_identity_clients_without_a_key() -> None:
    settings = Settings.from_env({"AzureWebJobsStorage__accountName": "mystorage"})
    assert settings.connection_string is None
    storage = Storage.from_settings(settings)  # builds clients; makes no request
    assert storage.blobs.url("batchfx", "x.json") == \
        "https://mystorage.blob.core.windows.net/batchfx/x.json"
    credential = storage.blobs._service_for("batchfx").credential
    assert type(credential).__name__ == "DefaultAzureCredential"


def test_a_data_account_by_name_holds_job_data_reached_with_the_same_identity() -> None:
    settings = Settings.from_env({"AzureWebJobsStorage__accountName": "mystorage",
                                  "BATCHFX_DATA_ACCOUNT": "mydata"})
    blobs = Storage.from_settings(settings).blobs  # builds clients; makes no request
    assert blobs.url("batchfx", "a") == "https://mystorage.blob.core.windows.net/batchfx/a"
    assert blobs.url("inbox", "a") == "https://mystorage.blob.core.windows.net/inbox/a"
    assert blobs.url("data", "in/a.csv") == "https://mydata.blob.core.windows.net/data/in/a.csv"
    assert blobs.url("outputs", "a") == "https://mydata.blob.core.windows.net/outputs/a"
    credential = blobs._service_for("data").credential
    assert type(credential).__name__ == "DefaultAzureCredential"


def test_no_storage_setting_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match="set AzureWebJobsStorage"):
        Storage.from_settings(Settings.from_env({}))
