"""Is a model folder an MLflow model, and where is its ``MLmodel`` file?

Pure: no mlflow import, so submit-time checks stay cheap. An MLflow model folder holds an
``MLmodel`` file, either at its top or in a subfolder (Azure ML registers models logged
with ``artifact_path="model"`` as ``<model>/model/MLmodel``). The shallowest ``MLmodel``
wins, because an MLflow model may carry other MLflow models among its artifacts; two at
the same shallowest depth are ambiguous and refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

__all__ = ["MAX_DEPTH", "MLMODEL", "find_mlmodel", "find_mlmodel_in", "is_mlflow_model"]

MLMODEL = "MLmodel"
MAX_DEPTH = 3  # folders below the model folder searched for MLmodel


def _shallowest(candidates: Iterable[PurePosixPath], where: str) -> PurePosixPath | None:
    found = sorted(candidates, key=lambda p: (len(p.parts), str(p)))
    if not found:
        return None
    depth = len(found[0].parts)
    tied = [str(p) for p in found if len(p.parts) == depth]
    if len(tied) > 1:
        raise ValueError(
            f"{where} holds several MLflow models at the same depth ({', '.join(tied)});"
            " point `model` at the one to score"
        )
    return found[0]


def find_mlmodel_in(names: Iterable[str]) -> str | None:
    """The ``MLmodel`` among relative paths (e.g. a blob listing), or None; '/'-separated."""
    candidates = []
    for name in names:
        path = PurePosixPath(name.replace("\\", "/").lstrip("/"))
        if path.name == MLMODEL and len(path.parts) <= MAX_DEPTH + 1:
            candidates.append(path)
    found = _shallowest(candidates, "the model")
    return None if found is None else str(found)


def find_mlmodel(folder: str | os.PathLike[str]) -> Path | None:
    """The ``MLmodel`` file of the MLflow model in ``folder``, or None when there is none."""
    root = Path(folder)
    if not root.is_dir():
        return None
    candidates = []
    for current, dirs, files in os.walk(root):
        relative = PurePosixPath(Path(current).relative_to(root).as_posix())
        depth = 0 if str(relative) == "." else len(relative.parts)
        # Hidden folders (.git, .ipynb_checkpoints) never hold the model; deep ones are data.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < MAX_DEPTH else []
        if MLMODEL in files:
            candidates.append(relative / MLMODEL if depth else PurePosixPath(MLMODEL))
    found = _shallowest(candidates, str(root))
    return None if found is None else root.joinpath(*found.parts)


def is_mlflow_model(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds an MLflow model (an ``MLmodel`` file), even an ambiguous one."""
    try:
        return find_mlmodel(folder) is not None
    except ValueError:
        return True
