"""End-to-end fixtures: ``app``, an isolated app (own container, queue, tables) on the
module's Azurite with a started local runner (helpers in e2e_app.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from app_settings import app_settings
from e2e_app import App

from batchfx.storage import Storage


@pytest.fixture
def app(connection_string: str, unique_name: str, tmp_path: Path) -> Iterator[App]:
    """An isolated app with a started runner (2 worker processes)."""
    settings = app_settings(connection_string, unique_name, tmp_path / "work",
                            inbox_container=f"{unique_name}-inbox", poll_interval_s=0.3,
                            lease_margin_s=2.0)
    storage = Storage.from_settings(settings)
    instance = App(settings, storage, tmp_path)
    instance.start()
    try:
        yield instance
    finally:
        for runner in instance.runners:
            runner.stop()
