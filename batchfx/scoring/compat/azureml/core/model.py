"""``azureml.core.Model`` under batchfx: the job's models (``model``/``models`` of its spec)."""

from __future__ import annotations

import os
import shutil
from typing import Any

from batchfx.scoring import aml_run

from .run import Refusing

__all__ = ["Model"]


class Model(Refusing):
    """One of the job's models, as ``Model(workspace, name, version=None)`` finds it."""

    _instead = "use Model.get_model_path or Model.download"

    def __init__(self, workspace: Any = None, name: str | None = None, id: str | None = None,
                 tags: Any = None, properties: Any = None, version: int | None = None,
                 **kwargs: Any) -> None:
        if id and not name:
            name, _, number = id.partition(":")
            version = int(number) if number.isdigit() else version
        if not name:
            raise ValueError("Model(workspace, name): give the model's name")
        self._path = aml_run.model_path(name, version)
        self.name = name
        self.version = next(v for n, v, p in aml_run.current().models
                            if n == name and p == self._path)
        self.id = f"{name}:{self.version}"
        self.workspace = workspace

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: Any = None
                       ) -> str:
        """The model's folder or file, laid out as Azure ML does:
        ``azureml-models/<name>/<version>/<the registered folder or file>``."""
        return aml_run.model_path(model_name, version)

    def download(self, target_dir: str = ".", exist_ok: bool = False, **kwargs: Any) -> str:
        """Copy the model's folder or file into ``target_dir``; returns its path there."""
        target = os.path.join(target_dir, os.path.basename(self._path))
        if os.path.exists(target) and not exist_ok:
            raise FileExistsError(f"Model.download: {target} exists; pass exist_ok=True")
        if os.path.isdir(self._path):
            shutil.copytree(self._path, target, dirs_exist_ok=exist_ok)
        else:
            os.makedirs(target_dir, exist_ok=True)
            shutil.copy2(self._path, target)
        return target

    @staticmethod
    def register(*args: Any, **kwargs: Any) -> Model:
        aml_run.unsupported("Model.register", "register models outside the script with "
                            "`batchfx model create --name NAME --path FOLDER`")

    @staticmethod
    def list(*args: Any, **kwargs: Any) -> list[Model]:
        aml_run.unsupported("Model.list", "name the job's models in its spec and read them "
                            "with Model.get_model_path")
