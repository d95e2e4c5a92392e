"""Shared fixtures: one in-memory Azurite per test session, and unique names per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from batchfx.errors import AzuriteError
from batchfx.local.azurite import Azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A started in-memory Azurite on free ports; skipped (failed when CI=true) if missing."""
    instance = Azurite()
    try:
        instance.start()
    except AzuriteError as exc:
        # On a laptop without Node the unit tests still run; in CI a missing Azurite is a bug.
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def connection_string(azurite: Azurite) -> str:
    """The connection string of the session's Azurite."""
    return azurite.connection_string


@pytest.fixture
def unique_name() -> str:
    """A short lowercase name, valid for a container, queue or table, unique to this test."""
    return "t" + uuid.uuid4().hex[:10]
