"""Building a script environment against Azurite with real pip installs: a wheel the test
builds, once per content; fetched (not built again) on another instance; pip's error kept
and given to every job of that content; a builder that died is taken over."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from batchfx.core.environments import Environment
from batchfx.services import environment_builder
from batchfx.services.environment_builder import (
    PARTITION,
    EnvironmentBuildError,
    environment_dir,
)
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the wheel of a one-module package, written here (a wheel is a zip
    of the module and its metadata: no build tool or index needed)."""
    out = tmp_path_factory.mktemp("wheels")
    info = "bfx_greeting-1.0.dist-info"
    files = {
        "bfx_greeting.py": b"def hello(name):\n    return f'hello {name}'\n",
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: bfx-greeting\nVersion: 1.0\n",
        f"{info}/WHEEL": (b"Wheel-Version: 1.0\nGenerator: batchfx-tests\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = "\n".join([*(_record_line(n, d) for n, d in files.items()),
                        f"{info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(out / "bfx_greeting-1.0-py3-none-any.whl", "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{info}/RECORD", record)
    return out


@pytest.fixture
def store(storage: Storage, wheels: Path, tmp_path: Path) -> Storage:
    settings = dataclasses.replace(storage.settings, pip_find_links=(str(wheels),),
                                   work_dir=str(tmp_path / "work"))
    return Storage.from_settings(settings)


def _imports(folder: str) -> str:
    done = subprocess.run([sys.executable, "-c", "import bfx_greeting; "
                           "print(bfx_greeting.hello('x'), bfx_greeting.__file__)"],
                          env={**os.environ, "PYTHONPATH": folder}, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def test_an_environment_is_built_once_and_fetched_by_another_instance(
        store: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    env = Environment(("bfx-greeting==1.0",))
    folder = environment_dir(store, env)
    said, where = _imports(folder).split(" ", 2)[1:]
    assert said == "x" and where.startswith(folder)
    row = store.tables.get(store.settings.jobs_table, PARTITION, env.key)
    assert row is not None and row.values["state"] == "built"
    assert environment_dir(store, env) == folder  # this instance: its own copy
    # Another instance (an empty work folder) fetches it; pip is not run again.
    shutil.rmtree(folder)

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip ran again")

    monkeypatch.setattr(environment_builder.subprocess, "run", no_pip)
    assert environment_dir(store, env) == folder
    monkeypatch.undo()
    assert _imports(folder).startswith("hello x")


def test_a_failed_build_keeps_pips_error_for_every_later_job(
        store: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    env = Environment(("bfx-greeting==9.9",))
    with pytest.raises(EnvironmentBuildError) as failed:
        environment_dir(store, env)
    assert "pip install failed" in str(failed.value)
    assert "bfx-greeting==9.9" in str(failed.value)  # pip's own words name it
    monkeypatch.setattr(environment_builder.subprocess, "run",
                        lambda *a, **k: pytest.fail("pip ran again"))
    with pytest.raises(EnvironmentBuildError, match="pip install failed"):
        environment_dir(store, env)


def test_a_build_claimed_by_a_worker_that_died_is_taken_over(store: Storage) -> None:
    env = Environment(("bfx-greeting>=1.0",))
    store.tables.insert(store.settings.jobs_table, {
        "PartitionKey": PARTITION, "RowKey": env.key, "state": "building",
        "until": time.time() - 1, "builder": "gone:1"})
    folder = environment_dir(store, env)
    assert _imports(folder).startswith("hello x")
