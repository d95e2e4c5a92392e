"""A job's models: how they are named in a spec, and how a script sees them on disk.

A spec names each model (``model:`` or a ``models:`` list) in one of two ways:

- a folder (or one file): a local path, or ``container/prefix`` in the app's storage. Its
  name is the folder's own name (the path's last part) and its version 1;
- a registered model: ``name:version``, ``name@latest``, or either with Azure ML's
  ``azureml:`` prefix (``azureml:clf:3``). Submit pins ``@latest`` to a number.

On the worker the models are laid out as Azure ML does (``Model.get_model_path`` and
AZUREML_MODEL_DIR rules of azureml-core and of v2 deployments)::

    <root>/azureml-models/<name>/<version>/<the registered folder or file, by its own name>

AZUREML_MODEL_DIR is ``<root>/azureml-models/<name>/<version>`` for a job with one model
(so a folder registered as ``model`` is ``$AZUREML_MODEL_DIR/model``), and
``<root>/azureml-models`` for a job with several. Pure: no storage calls.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict

from batchfx.core.errors import SpecError
from batchfx.core.spec_fields import Problems

__all__ = [
    "MODEL_NAME_RE",
    "JobModel",
    "ModelReference",
    "ModelRegistration",
    "ModelVersion",
    "build_layout",
    "layout_paths",
    "map_model_path",
    "parse_model_reference",
]

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_REFERENCE_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,254})"
                           r"(?::(?P<version>[0-9]+)|@(?P<label>[A-Za-z]+))?$")
_MODELS_DIR = "azureml-models"


@dataclass(frozen=True)
class ModelReference:
    """A registered model named in a spec; ``version`` None means the latest."""

    name: str
    version: int | None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version else f"{self.name}@latest"


def parse_model_reference(field: str, value: str) -> ModelReference | None:
    """The registered model ``value`` names, or None when it is a folder path.

    ``name:3``, ``name@latest``, ``azureml:name:3``, ``azureml:name@latest`` are references;
    anything else is a path (a container name alone is a path: a container's root)."""
    text = value.strip()
    prefixed = text.lower().startswith("azureml:")
    if prefixed:
        text = text[len("azureml:"):]
    elif "/" in text or (":" not in text and "@" not in text):
        return None  # a path: container/prefix, or a local folder
    if text.startswith("//") or text.startswith("/"):
        raise SpecError([f"{field}: got {value!r} — azureml:// URIs of datastores are not "
                         "available; give a registered model as azureml:name:version, or a "
                         "folder path"])
    match = _REFERENCE_RE.match(text)
    label = match.group("label") if match else None
    version = match.group("version") if match else None
    if match is None or (label is not None and label != "latest") or (
            prefixed and version is None and label is None):
        raise SpecError([f"{field}: got {value!r} — a registered model is named "
                         "name:version or name@latest (azureml: prefix allowed), e.g. "
                         "azureml:digits-clf:2; a folder is a path"])
    if version is not None and int(version) < 1:
        raise SpecError([f"{field}: got {value!r} — versions start at 1"])
    return ModelReference(match.group("name"), int(version) if version else None)


@dataclass(frozen=True)
class JobModel:
    """One model of a job, resolved at submit: where its files are, and its names."""

    name: str
    version: int
    path: str  # a local path, or container/prefix in the app's storage
    asset: str  # the registered folder's or file's own name
    registered: bool = False

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "path": self.path,
                "asset": self.asset, "registered": self.registered}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> JobModel:
        return cls(str(record["name"]), int(record["version"]), str(record["path"]),
                   str(record["asset"]), bool(record.get("registered", False)))

    @classmethod
    def for_path(cls, path: str, named: tuple[str, int] | None = None) -> JobModel:
        """An unregistered folder: named after itself, version 1, unless ``named``
        (a ``{path, name, version}`` model of the spec)."""
        asset = path.rstrip("/").rsplit("/", 1)[-1]
        name, version = named or (asset if MODEL_NAME_RE.match(asset) else "model", 1)
        return cls(name=name, version=version, path=path, asset=asset)


def map_model_path(value: Any, change: Callable[[str], Any]) -> Any:
    """A spec's model value (a path or reference, or ``{path, name…}``) with its path
    changed by ``change`` (made absolute, uploaded…); anything else as it is."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        return {**value, "path": change(value["path"])}
    return value


def _model_name(value: Any) -> Any:
    if not isinstance(value, str) or not MODEL_NAME_RE.match(value):
        raise Problems([f"name: got {value!r:.60} — expected 1 to 255 of letters, digits, "
                        "'-', '_' and '.', starting with a letter or digit, e.g. digits-clf"])
    return value


def _description(value: Any) -> Any:
    if not isinstance(value, str) or len(value) > 2000:
        raise Problems(["description: expected text of at most 2,000 characters"])
    return value


def _stored_path(value: Any, info: pydantic.ValidationInfo) -> Any:
    """A folder (or file) in the app's storage; ``stored`` in the validation context (a
    function of the path) gives the problems of finding it there."""
    if not isinstance(value, str) or not value.strip():
        raise Problems(["path: missing — the model's folder in the app's storage, e.g. "
                        "models/digits (`batchfx model create --path ./model` uploads it)"])
    if value.startswith("/"):
        raise Problems([f"path: got {value!r} — a registered model must not change: upload "
                        "the folder (`batchfx model create --path` does) and give its "
                        "container/prefix"])
    stored: Callable[[str], list[str]] = (info.context or {}).get("stored", lambda _: [])
    problems = stored(value)
    if problems:
        raise Problems(problems)
    return value


class ModelRegistration(BaseModel):
    """A model to register as the next version of ``name``: a folder (or file) in the app's
    storage, and a description."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: Annotated[str, BeforeValidator(_model_name)]
    description: Annotated[str, BeforeValidator(_description)] = ""
    path: Annotated[str, BeforeValidator(_stored_path)]

    def to_record(self) -> dict[str, Any]:
        """The version's record: the path without a trailing '/'."""
        return {"name": self.name, "path": self.path.rstrip("/"),
                "description": self.description}


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model: an immutable folder (or file) in storage."""

    name: str
    version: int
    path: str  # container/prefix of the uploaded snapshot; its last part is the asset's name
    description: str
    created: str

    def view(self) -> dict[str, Any]:
        """The JSON shape for the HTTP API and the CLI."""
        return {"name": self.name, "version": self.version, "path": self.path,
                "description": self.description, "created": self.created,
                "reference": f"azureml:{self.name}:{self.version}"}

    def job_model(self) -> JobModel:
        """The model as a job uses it (laid out as ``<name>/<version>/<asset>``)."""
        asset = self.path.rstrip("/").rsplit("/", 1)[-1]
        return JobModel(self.name, self.version, self.path, asset, registered=True)


def layout_paths(root: str, models: list[JobModel]) -> tuple[str, dict[tuple[str, int], str]]:
    """(AZUREML_MODEL_DIR, {(name, version): path of the model's folder or file}) under
    ``root``, as Azure ML lays models out."""
    base = os.path.join(root, _MODELS_DIR)
    paths = {(m.name, m.version): os.path.join(base, m.name, str(m.version), m.asset)
             for m in models}
    if len(models) == 1:
        return os.path.join(base, models[0].name, str(models[0].version)), paths
    return base, paths


def _link_tree(source: str, target: str, *, copy: bool) -> None:
    """``target`` as real folders holding ``source``'s files, so that os.walk and
    Path.rglob find every file as they would in Azure ML. The files are hard links to the
    app's own cache (copies across devices), or copies (``copy``) of a folder of the user's
    read in place: a link would change each file's ctime, by which a local folder pinned
    at submit would look changed. Never symbolic links: MLflow refuses files that resolve
    outside the model's folder."""
    if os.path.isfile(source):
        if not copy:
            try:
                os.link(source, target)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
        shutil.copy2(source, target)
        return
    os.makedirs(target, exist_ok=True)
    with os.scandir(source) as entries:
        for entry in entries:
            _link_tree(entry.path, os.path.join(target, entry.name), copy=copy)


def build_layout(root: str, staged: list[tuple[JobModel, str]]) -> str:
    """Lay out the models (each with its local folder or file) under ``root`` once; returns
    AZUREML_MODEL_DIR. Built aside and renamed into place, so a half-built layout is never
    used."""
    models = [m for m, _ in staged]
    model_dir, _ = layout_paths(root, models)
    if os.path.isdir(os.path.join(root, _MODELS_DIR)):
        return model_dir
    parent = os.path.dirname(root.rstrip("/")) or "."
    os.makedirs(parent, exist_ok=True)
    building = tempfile.mkdtemp(prefix=".building-", dir=parent)
    try:
        _, paths = layout_paths(building, models)
        for model, local in staged:
            target = paths[(model.name, model.version)]
            os.makedirs(os.path.dirname(target), exist_ok=True)
            _link_tree(local, target, copy=model.path.startswith("/"))  # a local folder
        try:
            os.rename(building, root)
        except OSError:  # another worker process built it first
            if not os.path.isdir(os.path.join(root, _MODELS_DIR)):
                raise
    finally:
        if os.path.isdir(building):
            shutil.rmtree(building, ignore_errors=True)
    return model_dir
