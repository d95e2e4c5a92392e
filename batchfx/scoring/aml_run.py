"""batchfx's ``azureml.core`` compatibility layer: what the shim package
(``batchfx/scoring/compat/azureml/core``) reads and writes in a script process.

``install`` runs in the script process before the entry script is imported: it keeps the
job's facts (``RunInfo``, the models' paths) and, only where the real ``azureml.core`` is not
installed, puts the shim on ``sys.path``. ``Run.log``/``tag`` calls are appended as JSON lines
to ``<worker log>.metrics.jsonl``, which is uploaded with the log and merged by finalize
(``batchfx.services.run_metrics``). Secrets are read by the worker and passed over the script's pipe
(``batchfx.scoring.secrets``): the script process holds no credential.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from batchfx.core.script_contract import RunInfo, ScriptConfig
from batchfx.scoring.secrets import read_secret

__all__ = ["COMPAT_DIR", "CompatError", "current", "get_secret", "install", "logged",
           "metrics_path", "model_path", "record", "set_broker", "unsupported"]

COMPAT_DIR = str(Path(__file__).with_name("compat"))


class CompatError(NotImplementedError):
    """An azureml.core call batchfx does not offer; the message names what to use instead."""


def unsupported(call: str, instead: str) -> NoReturn:
    """Raise CompatError naming ``call`` and the alternative."""
    raise CompatError(f"{call} is not available under batchfx (its azureml.core compatibility "
                      f"layer covers Model.get_model_path, Run.get_context() logging, tags, "
                      f"input_datasets and Key Vault secrets) — {instead}")


def metrics_path(log_path: str | None) -> str:
    """Where a worker's Run.log calls go: next to its log, so they are uploaded with it."""
    return f"{os.path.splitext(log_path)[0]}.metrics.jsonl" if log_path else ""


@dataclass
class _State:
    info: RunInfo
    models: tuple[tuple[str, int, str], ...]
    metrics_path: str
    lock: threading.Lock
    # (run, "metric" | "tag") -> name -> values logged by this process
    logged: dict[tuple[str, str], dict[str, list[Any]]] = field(default_factory=dict)


_state: _State | None = None


def _real_azureml_core() -> bool:
    """Whether an azureml.core other than this shim can be imported."""
    try:
        found = importlib.util.find_spec("azureml.core")
    except (ImportError, ValueError):
        return False
    origin = found.origin if found is not None else None
    return origin is not None and not origin.startswith(COMPAT_DIR + os.sep)


def install(config: ScriptConfig) -> bool:
    """Keep the job's facts for the shim; returns whether the shim is on sys.path (False
    when the real azureml.core is installed, which then answers the script's calls)."""
    global _state
    log_path = os.path.abspath(config.log_path) if config.log_path else None
    models = tuple((name, version, os.path.abspath(path)) for name, version, path in config.models)
    _state = _State(config.run_info, models, metrics_path(log_path), threading.Lock())
    if _real_azureml_core():
        return False
    if COMPAT_DIR not in sys.path:
        sys.path.append(COMPAT_DIR)  # last: anything the script's folder holds comes first
    return True


def current() -> _State:
    """The job's facts; CompatError outside a script process started by batchfx."""
    if _state is None:
        raise CompatError("azureml.core under batchfx: there is no job here — this works in a "
                          "scoring script that batchfx runs (init() or run())")
    return _state


def record(run: str, kind: str, name: str, value: Any, description: str = "") -> None:
    """Append one Run.log/log_list/log_row/tag call to the worker's metrics file."""
    state = current()
    entry = {"run": run, "kind": kind, "name": str(name), "value": _plain(value),
             "time": time.time(), "pid": os.getpid()}
    if description:
        entry["description"] = str(description)[:500]
    group = state.logged.setdefault((run, "tag" if kind == "tag" else "metric"), {})
    group.setdefault(str(name), []).append(entry["value"])
    if not state.metrics_path:
        return
    line = json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n"
    with state.lock:
        os.makedirs(os.path.dirname(state.metrics_path) or ".", exist_ok=True)
        with open(state.metrics_path, "a", encoding="utf-8") as stream:
            stream.write(line)


def logged(run: str, group: str) -> dict[str, Any]:
    """What this process logged on ``run``: tags (the last value each), or metrics (one
    value as it is, several as a list)."""
    values = current().logged.get((run, group), {})
    if group == "tag":
        return {k: v[-1] for k, v in values.items()}
    return {k: v[0] if len(v) == 1 else list(v) for k, v in values.items()}


def _plain(value: Any) -> Any:
    """A JSON value: numbers, text, booleans and None as they are (NaN and infinities as
    text), lists and mappings of them, numpy scalars as Python numbers; anything else (an
    array, an object) as its text."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return value if value == value and value not in (float("inf"), float("-inf")) \
            else str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _plain(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def model_path(name: str, version: int | None = None) -> str:
    """Model.get_model_path: the job's model ``name`` (its ``version``, or the one it has)."""
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise TypeError(f"Model.get_model_path: version should be an int, got {version!r}")
    models = current().models
    found = [(v, path) for n, v, path in models if n == name and version in (None, v)]
    if not found:
        have = ", ".join(f"{n}:{v}" for n, v, _ in models) or "none"
        wanted = f"{name}:{version}" if version is not None else name
        raise FileNotFoundError(
            f"Model.get_model_path({wanted!r}): the job has no such model (its models: {have})"
            " — name it in the job as model: azureml:NAME:VERSION (registered with `batchfx "
            "model create`) or models: [...]; a folder is named after itself, version 1")
    return max(found)[1]


def set_broker(broker: Callable[[str], str] | None) -> None:
    """Who answers ``get_secret`` in this process: the worker, over the script's pipe (the
    script process holds no credential); None: read here (tests, in-process use)."""
    global _broker
    _broker = broker


_broker: Callable[[str], str] | None = None


def get_secret(name: str) -> str:
    """A secret by name, read by the worker for the script (``batchfx.scoring.secrets``).
    The value is never logged."""
    if not isinstance(name, str) or not name:
        raise ValueError("get_secret: give the secret's name, e.g. get_secret('cog-key')")
    info = current().info
    return _broker(name) if _broker is not None else read_secret(info, name)
