"""Running a user's Azure-ML-style scoring script (``init()``, ``run(mini_batch)``).

``batchfx.core.script_contract`` holds the pure value types and the return-value rules,
``process`` the parent side (``ScriptProcess``), ``host`` the child process the script runs
in, ``pool`` the processes an instance shares, ``mlflow`` the script batchfx runs for an
MLflow model, ``aml_run`` and ``compat`` the ``azureml.core`` shim a script imports.
"""

from __future__ import annotations

from batchfx.core.script_contract import (
    MiniBatchContext,
    ResultCounts,
    RunInfo,
    ScriptConfig,
    TryError,
    TryOutcome,
    TryPhase,
    evaluate_result,
)
from batchfx.scoring.process import ScriptProcess

__all__ = [
    "MiniBatchContext",
    "ResultCounts",
    "RunInfo",
    "ScriptConfig",
    "ScriptProcess",
    "TryError",
    "TryOutcome",
    "TryPhase",
    "evaluate_result",
]
