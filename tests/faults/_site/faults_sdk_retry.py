"""Fast Azure SDK retry backoff for fault tests (the retry *counts* stay the SDK's defaults).

The storage SDK waits 15-21 s before retrying a 503 on blob/queue calls (ExponentialRetry
initial_backoff=15) and the table SDK 0, 1.6, 3.2 s. batchfx does not expose these
(reported to the lead), so a suite injecting hundreds of 503s would take hours. This
shortens the waits only: 0.05, 0.1, 0.2 s, jittered.

Applied in the test process with ``patches()`` + monkeypatch, and in the runner's spawned
worker processes by ``sitecustomize`` (this folder on PYTHONPATH and
``BATCHFX_FAULTS_FAST_RETRY=1``), lazily when the SDK's policy modules are imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import random
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

ENV_FLAG = "BATCHFX_FAULTS_FAST_RETRY"
_STORAGE = ("azure.storage.blob._shared.policies", "azure.storage.queue._shared.policies")
_TABLES = "azure.data.tables._policies"


def _storage_backoff(self: Any, settings: dict[str, Any]) -> float:
    return float(0.05 * 2 ** max(0, settings["count"] - 1) * random.uniform(0.8, 1.2))


def _tables_init(original: Callable[..., None]) -> Callable[..., None]:
    def init(self: Any, **kwargs: Any) -> None:
        kwargs.setdefault("retry_backoff_factor", 0.05)
        original(self, **kwargs)
    init.__wrapped__ = original  # type: ignore[attr-defined]
    return init


def patches_for(module: ModuleType) -> list[tuple[Any, str, Any]]:
    """(object, attribute, new value) to apply to one imported SDK module."""
    if module.__name__ in _STORAGE:
        return [(module.ExponentialRetry, "get_backoff_time", _storage_backoff)]
    if module.__name__ == _TABLES:
        policy = module.TablesRetryPolicy
        original = getattr(policy.__init__, "__wrapped__", policy.__init__)
        return [(policy, "__init__", _tables_init(original))]
    return []


def patches() -> list[tuple[Any, str, Any]]:
    """Every patch, importing the SDK modules (for the test process)."""
    import importlib

    out: list[tuple[Any, str, Any]] = []
    for name in (*_STORAGE, _TABLES):
        out += patches_for(importlib.import_module(name))
    return out


class _Finder(importlib.abc.MetaPathFinder):
    """Patches a target module right after it is first imported."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> Any:
        if fullname not in (*_STORAGE, _TABLES):
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original_exec = loader.exec_module  # type: ignore[attr-defined]

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            for obj, name, value in patches_for(module):
                setattr(obj, name, value)

        loader.exec_module = exec_module  # type: ignore[attr-defined,method-assign]
        return spec


def install_lazily() -> None:
    """Patch the SDK modules whenever this process imports them."""
    sys.meta_path.insert(0, _Finder())
