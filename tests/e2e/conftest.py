"""End-to-end fixtures: ``app``, an isolated app (own container, queue, tables) on the
module's Azurite with a started local runner (helpers in e2e_app.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_app import App

from batchfx.core.settings import Settings
from batchfx.storage import Storage


@pytest.fixture
def app(connection_string: str, unique_name: str, tmp_path: Path) -> Iterator[App]:
    """An isolated app with a started runner (2 worker processes)."""
    settings = Settings(
        connection_string=connection_string,
        jobs_container=unique_name,
        queue_name=unique_name,
        jobs_table=f"{unique_name}jobs",
        minibatches_table=f"{unique_name}mb",
        inbox_container=f"{unique_name}-inbox",
        poll_interval_s=0.3,
        lease_margin_s=2.0,
        work_dir=str(tmp_path / "work"),
    )
    storage = Storage.from_settings(settings)
    instance = App(settings, storage, tmp_path)
    instance.start()
    try:
        yield instance
    finally:
        for runner in instance.runners:
            runner.stop()
