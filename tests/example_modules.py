"""Loading an example's own Python files (``examples/<name>/prepare.py`` …) as modules,
by path: examples are not a package, and each test gets a fresh module."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(example: str, file: str = "prepare.py", *, name: str = "") -> ModuleType:
    """``examples/<example>/<file>`` imported as a fresh module (``name``: its name)."""
    path = EXAMPLES / example / file
    spec = importlib.util.spec_from_file_location(name or f"{example}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
