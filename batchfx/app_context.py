"""Per-process objects the Functions entry points share, built on first use (never at import).

The host gives settings through the environment; the local runner may hand its own
settings in with ``use_settings`` so tests can run several isolated apps in one process.
"""

from __future__ import annotations

import atexit
import os
import threading
from functools import lru_cache

from batchfx.scoring.pool import ScriptPool
from batchfx.settings import Settings
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
            atexit.register(_pool.close)
        return _pool
