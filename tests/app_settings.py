"""The one place a test's own app is named: its container, queue and tables after the test's
unique name, on the module's Azurite (every conftest and harness builds its settings here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batchfx.core.settings import Settings


def app_settings(connection_string: str, name: str, work_dir: Path, **changes: Any) -> Settings:
    """Settings of an app of its own: ``name`` for its container and queue, ``name`` + jobs/mb
    for its tables, ``work_dir`` for its worker folders; ``changes`` set any other setting."""
    return Settings(
        connection_string=connection_string,
        jobs_container=name,
        queue_name=name,
        jobs_table=f"{name}jobs",
        minibatches_table=f"{name}mb",
        work_dir=str(work_dir),
        **changes,
    )
