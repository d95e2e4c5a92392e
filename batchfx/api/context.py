"""Per-process objects the Functions entry points share, built on first use (never at import).

The host gives settings through the environment; the local runner may hand its own
settings in with ``use_settings`` so tests can run several isolated apps in one process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from functools import lru_cache

from batchfx.core.settings import Settings
from batchfx.scoring.pool import ScriptPool
from batchfx.services.work_folders import ended_jobs_of, sweep_ended_jobs
from batchfx.storage import Storage

__all__ = ["script_pool", "settings", "storage", "use_settings"]

_override: Settings | None = None
_pool: ScriptPool | None = None
_lock = threading.Lock()


def use_settings(value: Settings | None) -> None:
    """Make ``settings()`` return ``value`` (None: read the environment again)."""
    global _override
    _override = value


def settings() -> Settings:
    """The app's settings: the override, else the process environment."""
    return _override if _override is not None else Settings.from_env(os.environ)


@lru_cache(maxsize=8)
def _storage_for(value: Settings) -> Storage:
    return Storage.from_settings(value)


def storage() -> Storage:
    """The storage account client for the current settings (cached per settings)."""
    return _storage_for(settings())


def script_pool() -> ScriptPool:
    """This process's scoring-script processes, kept alive across mini-batches and shared
    by the invocations running at once."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ScriptPool()
            atexit.register(_sweep_at_exit)  # runs after the pool closed (atexit is LIFO)
            atexit.register(_pool.close)
        return _pool


def _sweep_at_exit() -> None:
    """Remove the folders of jobs that have ended, as the process stops."""
    with contextlib.suppress(Exception):  # stopping: never fail the exit over it
        sweep_ended_jobs(settings().work_dir, ended_jobs_of(storage()),
                         settings().work_dir_max_mb)
