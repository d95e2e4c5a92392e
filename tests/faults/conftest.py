"""Fault-test fixtures: isolated apps on the module's Azurite (optionally behind the fault
proxy) or on a private on-disk Azurite, and a figures line per test in the CI output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batchfx.local.azurite import Azurite
from batchfx.storage import Storage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import FaultApp, settings_for
from proxy import FaultProxy

_FIGURES: list[str] = []


@pytest.fixture
def fault_proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    """A started fault proxy in front of the module's Azurite (no faults until set)."""
    proxy = FaultProxy({"blob": azurite.blob_port, "queue": azurite.queue_port,
                        "table": azurite.table_port}, seed=20261122, stall_s=1.5)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _app(connection_string: str, direct: str, name: str, tmp: Path, *, poll_s: float = 1.0,
         **options: Any) -> FaultApp:
    settings = settings_for(connection_string, name, tmp / "work", poll_s=poll_s)
    direct_settings = settings_for(direct, name, tmp / "work")
    return FaultApp(settings, Storage.from_settings(direct_settings), tmp, **options)


@pytest.fixture
def make_app(azurite: Azurite, fault_proxy: FaultProxy, unique_name: str, tmp_path: Path
             ) -> Iterator[Callable[..., FaultApp]]:
    """``make_app(proxy=None, workers=2, message_lease_s=3.0, poll_s=1.0)``: an app on the
    module's Azurite, talking through ``proxy`` when given; its runners stop at teardown
    (before the proxy does, which is why this fixture asks for it)."""
    apps: list[FaultApp] = []

    def make(proxy: FaultProxy | None = None, **options: Any) -> FaultApp:
        via = proxy.connection_string if proxy is not None else azurite.connection_string
        app = _app(via, azurite.connection_string, unique_name, tmp_path, **options)
        apps.append(app)
        return app

    try:
        yield make
    finally:
        for app in apps:
            app.close()


@pytest.fixture
def disk_azurite(tmp_path: Path) -> Iterator[Azurite]:
    """A private Azurite persisting to disk, so it can be restarted mid-job."""
    instance = Azurite(location=str(tmp_path / "az"))
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def disk_app(disk_azurite: Azurite, unique_name: str, tmp_path: Path) -> Iterator[FaultApp]:
    """An app (3 workers) on the private on-disk Azurite."""
    app = _app(disk_azurite.connection_string, disk_azurite.connection_string, unique_name,
               tmp_path, workers=3)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def figures(request: pytest.FixtureRequest,
            record_property: Callable[[str, object], None]) -> Callable[..., None]:
    """``figures(key=value, ...)``: print one figures line, record it as test properties
    (junit XML) and repeat it in the terminal summary of a plain CI run."""

    def report(**values: object) -> None:
        text = " ".join(f"{k}={v}" for k, v in values.items())
        line = f"FIGURES {request.node.name}: {text}"
        print(f"\n{line}")
        for key, value in values.items():
            record_property(key, value)
        _FIGURES.append(line)

    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures of every fault test, in normal output (no -s needed)."""
    if _FIGURES:
        terminalreporter.section("fault-injection figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
