"""Fixtures shared by integration tests: an app's settings and storage on the module's
Azurite (names unique to the test), and a data container holding a job's code.

A module that defines a fixture of the same name uses its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_settings import app_settings

from batchfx.core.settings import Settings
from batchfx.storage import Storage


@pytest.fixture
def settings(connection_string: str, unique_name: str, tmp_path: Path) -> Settings:
    """An app with its own container, queue and tables on the module's Azurite."""
    return app_settings(connection_string, unique_name, tmp_path)


@pytest.fixture
def storage(settings: Settings) -> Storage:
    """The app's storage, its container, queues and tables created."""
    store = Storage.from_settings(settings)
    store.ensure_resources()
    return store


@pytest.fixture
def data(storage: Storage, unique_name: str) -> str:
    """A container with the job's code folder (``code/score.py``); inputs go in ``inputs/``."""
    container = unique_name + "data"
    storage.blobs.ensure_container(container)
    script = b"def run(mini_batch):\n    return mini_batch\n"
    storage.blobs.upload(container, "code/score.py", script)
    return container
