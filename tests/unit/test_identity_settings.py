"""Identity-based storage connections (AzureWebJobsStorage__accountName, managed identity)."""

from __future__ import annotations

import pytest

from batchfx.errors import StorageError
from batchfx.settings import Settings
from batchfx.storage import Storage


def test_account_name_setting_builds_identity_clients_without_a_key() -> None:
    settings = Settings.from_env({"AzureWebJobsStorage__accountName": "mystorage"})
    assert settings.connection_string is None
    storage = Storage.from_settings(settings)  # builds clients; makes no request
    assert storage.blobs.container("batchfx").url == \
        "https://mystorage.blob.core.windows.net/batchfx"
    credential = storage.blobs.container("batchfx").credential
    assert type(credential).__name__ == "DefaultAzureCredential"


def test_no_storage_setting_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match="set AzureWebJobsStorage"):
        Storage.from_settings(Settings.from_env({}))
