"""Running a user's Azure-ML-style scoring script (``init()``, ``run(mini_batch)``).

``contract`` holds the pure value types and the return-value rules, ``worker`` the
parent side (``ScriptWorker``), ``host`` the child process the script runs in.
"""

from __future__ import annotations

from batchfx.scoring.contract import (
    MiniBatchContext,
    ResultCounts,
    RunInfo,
    ScriptConfig,
    TryError,
    TryOutcome,
    TryPhase,
    evaluate_result,
)
from batchfx.scoring.worker import ScriptWorker

__all__ = [
    "MiniBatchContext",
    "ResultCounts",
    "RunInfo",
    "ScriptConfig",
    "ScriptWorker",
    "TryError",
    "TryOutcome",
    "TryPhase",
    "evaluate_result",
]
