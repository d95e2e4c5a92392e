"""Shared fixtures: one in-memory Azurite per test module, and unique names per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from batchfx.core.errors import AzuriteError
from batchfx.local.azurite import Azurite

_PARTS = ("unit", "integration", "e2e", "faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries its part's marker (tests/<part>/…): ``-m unit`` and so on."""
    for item in items:
        part = item.path.relative_to(item.config.rootpath / "tests").parts[0]
        if part in _PARTS:
            item.add_marker(getattr(pytest.mark, part))


@pytest.fixture(autouse=True, scope="session")
def _own_serve_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never read or write the user's ``batchfx serve`` state (~/.local/state)."""
    saved = os.environ.get("BATCHFX_STATE_DIR")
    os.environ["BATCHFX_STATE_DIR"] = str(tmp_path_factory.mktemp("serve-state"))
    yield
    if saved is None:
        os.environ.pop("BATCHFX_STATE_DIR", None)
    else:
        os.environ["BATCHFX_STATE_DIR"] = saved


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    """A started in-memory Azurite on free ports; skipped (failed when CI=true) if missing.

    One per module (0.8 s to start), not per session: Azurite sweeps deleted blob data 10
    minutes after it starts, one extent at a time against all the others, and answers
    nothing meanwhile. A session's worth of tests leaves enough behind to freeze it for
    minutes (115 s seen in the middle of a fault test; 12,000 deleted of 24,000 blobs froze
    it for 5 minutes), which no test's time limit should have to allow for.
    """
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
    """The connection string of the module's Azurite."""
    return azurite.connection_string


@pytest.fixture
def unique_name() -> str:
    """A short lowercase name, valid for a container, queue or table, unique to this test."""
    return "t" + uuid.uuid4().hex[:10]
