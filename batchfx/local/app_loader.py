"""Finding the Functions app (``function_app.py``) the local runner serves."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import azure.functions as func

__all__ = ["app_functions", "load_app", "resolve_settings"]


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


_indexed: dict[int, list[Any]] = {}


def app_functions(app: func.FunctionRegister) -> list[Any]:
    """``app.get_functions()``, indexed once per app (the SDK refuses a second indexing)."""
    key = id(app)
    if key not in _indexed:
        saved = getattr(app, "functions_bindings", None)
        app.functions_bindings = None
        try:
            _indexed[key] = list(app.get_functions())
        finally:
            app.functions_bindings = saved
    return _indexed[key]


def resolve_settings(value: str, env: Mapping[str, str], used_in: str) -> str:
    """``value`` with each ``%NAME%`` replaced by the app setting, as the host resolves a
    binding's queue name, blob path or timer schedule; KeyError names a missing one."""
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in env:
            raise KeyError(f"app setting {key} is not set (used in {used_in})")
        return env[key]
    return re.sub(r"%([^%]+)%", replace, value)
