"""The Functions app (``function_app.py``) the local runner serves, and its functions by
trigger kind: what each of the runner's stand-ins for the host (HTTP, queues, timers, blob
events, Durable) reads, from the same metadata the host indexes."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func

__all__ = ["Triggered", "app_functions", "load_app", "resolve_settings", "triggered"]


def load_app() -> func.FunctionRegister:
    """``function_app.app``: importable from the path, else next to the batchfx package."""
    module = sys.modules.get("function_app")
    if module is None:
        candidate = Path(__file__).resolve().parents[2] / "function_app.py"
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location("function_app", candidate)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules["function_app"] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module("function_app")
    app = module.app
    if not isinstance(app, func.FunctionRegister):
        raise TypeError("function_app.app is not an Azure Functions app (FunctionApp/DFApp)")
    return app


# Kept per app object (weakly: an app freed and another made at its address is indexed anew).
_indexed: weakref.WeakKeyDictionary[func.FunctionRegister, list[Any]] = (
    weakref.WeakKeyDictionary())


def app_functions(app: func.FunctionRegister) -> list[Any]:
    """``app.get_functions()``, indexed once per app (the SDK refuses a second indexing)."""
    if app not in _indexed:
        saved = getattr(app, "functions_bindings", None)
        app.functions_bindings = None
        try:
            _indexed[app] = list(app.get_functions())
        finally:
            app.functions_bindings = saved
    return _indexed[app]


@dataclass(frozen=True)
class Triggered:
    """One of the app's functions with a trigger of the kind asked for."""

    name: str
    trigger: dict[str, Any]  # the trigger's binding, as function.json holds it
    user_function: Callable[..., Any]
    durable_client: str | None  # the argument a ``durableClient`` binding fills, if any


def triggered(app: func.FunctionRegister, binding: str) -> list[Triggered]:
    """The app's functions triggered by ``binding`` (``httpTrigger``, ``queueTrigger``,
    ``timerTrigger``, ``blobTrigger``, ``orchestrationTrigger``, ``activityTrigger``)."""
    found = []
    for fn in app_functions(app):
        trigger = fn.get_trigger()
        if trigger is None or trigger.get_binding_name() != binding:
            continue
        client = next((b.name for b in fn.get_bindings() if b.type == "durableClient"), None)
        found.append(Triggered(fn.get_function_name() or "", trigger.get_dict_repr(),
                               fn.get_user_function(), client))
    return found


def resolve_settings(value: str, env: Mapping[str, str], used_in: str) -> str:
    """``value`` with each ``%NAME%`` replaced by the app setting, as the host resolves a
    binding's queue name, blob path or timer schedule; KeyError names a missing one."""
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in env:
            raise KeyError(f"app setting {key} is not set (used in {used_in})")
        return env[key]
    return re.sub(r"%([^%]+)%", replace, value)
