"""Building a script environment once per content, and fetching it on each instance.

The first worker that needs an environment claims its build (a row in the jobs table,
``environment/<key>``: one builder at a time; a claim not renewed for ``CLAIM_S`` is taken
over), installs the requirements with pip into a folder of its own (``pip install
--target``: batchfx's own packages never change), and keeps the result in the app's
storage (``<jobs container>/environments/<key>.tar.gz``). Every other worker waits for
the row to say ``built`` and fetches it once per instance into
``<work dir>/envs/<key>/``, which the script process gets ahead of its ``sys.path``. A
failed build is kept with pip's own error: the job fails fast with it, and so does every
later job of the same content.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from batchfx.core.environments import Environment
from batchfx.core.errors import BatchfxError, ConflictError
from batchfx.storage import Storage

__all__ = ["CLAIM_S", "EnvironmentBuildError", "environment_dir"]

logger = logging.getLogger(__name__)

PARTITION = "environment"
CLAIM_S = 120.0  # a builder renews its claim every third of this
BUILD_TIMEOUT_S = 1800.0
WAIT_POLL_S = 2.0
_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


class EnvironmentBuildError(BatchfxError):
    """The job's environment could not be built (pip's error), or its build never ended."""


def _blob(key: str) -> str:
    return f"environments/{key}.tar.gz"


def environment_dir(storage: Storage, env: Environment) -> str:
    """The local folder of ``env``'s packages: built here or fetched, once per instance."""
    local = os.path.join(storage.settings.work_dir, "envs", env.key)
    if os.path.isdir(local):
        return local
    with _locks_lock:
        lock = _locks.setdefault(env.key, threading.Lock())
    with lock:  # one thread of this process builds or fetches; the others wait for it
        if os.path.isdir(local):
            return local
        deadline = time.monotonic() + BUILD_TIMEOUT_S + CLAIM_S
        table = storage.settings.jobs_table
        while True:
            found = storage.tables.get(table, PARTITION, env.key)
            state = str(found.values.get("state", "")) if found else ""
            if state == "built":
                return _fetch(storage, env, local)
            if state == "failed":
                raise EnvironmentBuildError(str(found.values.get("error", "")) if found else "")
            stale = found is not None and float(found.values.get("until", 0)) < time.time()
            if found is None or stale:
                try:
                    etag = _claim(storage, env, None if found is None else found.etag)
                except ConflictError:
                    etag = None  # another worker claimed it first
                if etag is not None:
                    return _build(storage, env, local, etag)
            if time.monotonic() > deadline:
                raise EnvironmentBuildError(
                    f"waited {BUILD_TIMEOUT_S + CLAIM_S:.0f} s for another worker to build "
                    "the environment; look at that worker's log")
            time.sleep(WAIT_POLL_S)


def _row(env: Environment, state: str, **values: object) -> dict[str, object]:
    return {"PartitionKey": PARTITION, "RowKey": env.key, "state": state,
            "requirements": "\n".join(env.requirements)[:30_000], **values}


def _claim(storage: Storage, env: Environment, etag: str | None) -> str:
    row = _row(env, "building", until=time.time() + CLAIM_S, builder=f"{os.uname().nodename}"
               f":{os.getpid()}")
    table = storage.settings.jobs_table
    if etag is None:
        return storage.tables.insert(table, row)
    return storage.tables.replace(table, row, etag=etag)


@contextmanager
def _renewing(storage: Storage, env: Environment, etag: str) -> Iterator[list[str]]:
    """Keep the claim fresh while pip runs; yields the current ETag (in a list)."""
    current = [etag]
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(CLAIM_S / 3):
            try:
                current[0] = _claim(storage, env, current[0])
            except Exception as exc:  # lost to a takeover, or storage flaked: go on
                logger.warning("environment %s: renewing the build claim failed: %s",
                               env.key, exc)

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    try:
        yield current
    finally:
        stop.set()
        thread.join()


def _pip_command(storage: Storage, target: str, requirements: str) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "--target", target, "--no-input",
               "--disable-pip-version-check", "--no-warn-script-location", "--quiet",
               "-r", requirements]
    settings = storage.settings
    if settings.pip_index_url:
        command += ["--index-url", settings.pip_index_url]
    for link in settings.pip_find_links:
        command += ["--find-links", link]
    return command


def _build(storage: Storage, env: Environment, local: str, etag: str) -> str:
    table = storage.settings.jobs_table
    os.makedirs(os.path.dirname(local), exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".build-{env.key}-", dir=os.path.dirname(local))
    try:
        requirements = os.path.join(work, "requirements.txt")
        with open(requirements, "w", encoding="utf-8") as stream:
            stream.write("\n".join(env.requirements) + "\n")
        site = os.path.join(work, "site")
        logger.info("environment %s: building (%s)", env.key, ", ".join(env.requirements))
        started = time.monotonic()
        with _renewing(storage, env, etag) as current:
            try:
                done = subprocess.run(_pip_command(storage, site, requirements),
                                      capture_output=True, text=True,
                                      timeout=BUILD_TIMEOUT_S, check=False)
                failure = "" if done.returncode == 0 else (
                    f"pip install failed (exit {done.returncode}):\n"
                    f"{(done.stderr or done.stdout)[-6000:]}")
            except subprocess.TimeoutExpired:
                failure = f"pip install did not end within {BUILD_TIMEOUT_S:.0f} s"
            if failure:
                storage.tables.replace(table, _row(env, "failed", error=failure),
                                       etag=current[0])
                raise EnvironmentBuildError(failure)
            archive = shutil.make_archive(os.path.join(work, "env"), "gztar", site)
            with open(archive, "rb") as stream:
                storage.blobs.upload(storage.settings.jobs_container, _blob(env.key), stream)
            storage.tables.replace(table, _row(env, "built", seconds=round(
                time.monotonic() - started, 1)), etag=current[0])
        _place(site, local)
        logger.info("environment %s: built in %.1f s", env.key, time.monotonic() - started)
        return local
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch(storage: Storage, env: Environment, local: str) -> str:
    os.makedirs(os.path.dirname(local), exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".fetch-{env.key}-", dir=os.path.dirname(local))
    try:
        archive = os.path.join(work, "env.tar.gz")
        storage.blobs.download_to_file(storage.settings.jobs_container, _blob(env.key),
                                       archive)
        site = os.path.join(work, "site")
        with tarfile.open(archive) as tar:
            tar.extractall(site, filter="data")
        _place(site, local)
        return local
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _place(site: str, local: str) -> None:
    os.makedirs(site, exist_ok=True)  # an environment of packages with no files is empty
    try:
        os.rename(site, local)
    except OSError:  # another process of this instance placed it first
        if not os.path.isdir(local):
            raise
