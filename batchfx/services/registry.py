"""Registered models and deployments, and published pipelines, versioned, in the jobs table.

Rows (PartitionKey ``model``, ``deployment`` or ``pipeline``)::

    RowKey NAME           the pointer: latest version number, deleted flag
    RowKey NAME@000001    one row per version: the record as JSON and its fingerprint

A version row is written once and never changed, and names the immutable code and model
snapshots (``container/prefix``), so jobs already started from a version keep working
after a newer version is registered or the name is deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from batchfx.core.deployments import Deployment
from batchfx.core.errors import ConflictError, NotRegisteredError, SpecError
from batchfx.core.models import (
    ModelRegistration,
    ModelVersion,
    map_model_path,
    parse_model_reference,
)
from batchfx.core.pipelines import Pipeline, placeholders
from batchfx.core.records import utc_now
from batchfx.core.spec import split_storage_path
from batchfx.core.spec_fields import problem_messages
from batchfx.storage import Storage

__all__ = [
    "DEPLOYMENT_PARTITION",
    "MODEL_PARTITION",
    "PIPELINE_PARTITION",
    "DeploymentVersion",
    "ModelVersion",
    "NotRegisteredError",
    "PipelineVersion",
    "delete_deployment",
    "delete_pipeline",
    "get_deployment",
    "get_model",
    "get_pipeline",
    "list_deployments",
    "list_models",
    "list_pipelines",
    "publish_pipeline",
    "register_deployment",
    "register_model",
]

logger = logging.getLogger(__name__)

DEPLOYMENT_PARTITION = "deployment"
PIPELINE_PARTITION = "pipeline"
MODEL_PARTITION = "model"
_MAX_RECORD_CHARS = 30_000
_HOW_TO = {DEPLOYMENT_PARTITION: "register one with POST /api/deployments",
           PIPELINE_PARTITION: "publish one with POST /api/pipelines",
           MODEL_PARTITION: "register one with `batchfx model create` (POST /api/models)"}


@dataclass(frozen=True)
class DeploymentVersion:
    """One stored version of a deployment."""

    deployment: Deployment
    version: int
    created: str

    def view(self) -> dict[str, Any]:
        """The JSON shape for the HTTP API and the CLI."""
        return {**self.deployment.to_record(), "version": self.version, "created": self.created}


@dataclass(frozen=True)
class PipelineVersion:
    """One stored version of a pipeline."""

    pipeline: Pipeline
    version: int
    created: str

    def view(self) -> dict[str, Any]:
        """The JSON shape for the HTTP API and the CLI."""
        return {**self.pipeline.to_record(), "version": self.version, "created": self.created}


@dataclass(frozen=True)
class _Stored:
    record: dict[str, Any]
    version: int
    created: str


def _version_key(name: str, version: int) -> str:
    return f"{name}@{version:06d}"


def _fingerprint(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _read_version(storage: Storage, kind: str, name: str, version: int) -> _Stored | None:
    row = storage.tables.get(storage.settings.jobs_table, kind, _version_key(name, version))
    if row is None:
        return None
    values = row.values
    return _Stored(json.loads(values["record"]), int(values["version"]), str(values["created"]))


def _register(storage: Storage, kind: str, name: str, record: dict[str, Any]
              ) -> tuple[_Stored, bool]:
    """Store ``record`` as the next version unless the latest one holds the same content."""
    text = json.dumps(record, separators=(",", ":"))
    if len(text) > _MAX_RECORD_CHARS:
        raise SpecError([f"{kind}: {len(text)} characters once stored — keep arguments, "
                         f"environment_variables and templates under {_MAX_RECORD_CHARS}"])
    table, fingerprint = storage.settings.jobs_table, _fingerprint(record)
    pointer = storage.tables.get(table, kind, name)
    latest = int(pointer.values["latest"]) if pointer else 0
    current = _read_version(storage, kind, name, latest) if latest else None
    if current is not None and not (pointer and pointer.values.get("deleted")) \
            and _fingerprint(current.record) == fingerprint:
        return current, False
    # Only one writer can insert a version number; a loser (or a row left by a
    # registration that stopped before its pointer write) makes us take the next one.
    for number in range(latest + 1, latest + 100):
        stored = _Stored(record, number, utc_now())
        try:
            storage.tables.insert(table, {
                "PartitionKey": kind, "RowKey": _version_key(name, number), "name": name,
                "version": number, "record": text, "fingerprint": fingerprint,
                "created": stored.created})
        except ConflictError:
            taken = _read_version(storage, kind, name, number)
            if taken is not None and _fingerprint(taken.record) == fingerprint:
                _advance(storage, kind, name, number)
                return taken, False
            continue
        _advance(storage, kind, name, number)
        logger.info("%s %s: version %d registered", kind, name, number)
        return stored, True
    raise ConflictError(f"{kind} {name}: too many concurrent registrations")


def _advance(storage: Storage, kind: str, name: str, version: int) -> None:
    """Point ``name`` at ``version`` (never backwards) and clear its deleted flag."""
    table = storage.settings.jobs_table
    for _ in range(20):
        pointer = storage.tables.get(table, kind, name)
        latest = int(pointer.values["latest"]) if pointer else 0
        if pointer is not None and latest >= version and not pointer.values.get("deleted"):
            return
        row = {"PartitionKey": kind, "RowKey": name, "latest": max(latest, version),
               "deleted": False, "updated": utc_now()}
        try:
            if pointer is None:
                storage.tables.insert(table, row)
            else:
                storage.tables.replace(table, row, etag=pointer.etag)
            return
        except ConflictError:
            continue
    raise ConflictError(f"{kind} {name}: too many concurrent updates")


def _names(storage: Storage, kind: str) -> list[str]:
    rows = storage.tables.query(storage.settings.jobs_table, kind,
                                select=["RowKey", "deleted"])
    return sorted(r["RowKey"] for r in rows if "@" not in r["RowKey"] and not r.get("deleted"))


def _get(storage: Storage, kind: str, name: str, version: int | None) -> _Stored:
    pointer = storage.tables.get(storage.settings.jobs_table, kind, name)
    if pointer is None:
        known = ", ".join(_names(storage, kind)) or f"none yet — {_HOW_TO[kind]}"
        raise NotRegisteredError(f"no {kind} named {name!r}; registered {kind}s: {known}")
    if pointer.values.get("deleted"):
        raise NotRegisteredError(f"{kind} {name!r} was deleted; {_HOW_TO[kind]} to use the "
                                 "name again")
    latest = int(pointer.values["latest"])
    wanted = latest if version is None else version
    stored = _read_version(storage, kind, name, wanted) if 1 <= wanted <= latest else None
    if stored is None:
        raise NotRegisteredError(f"{kind} {name!r} has no version {wanted}; its versions are "
                                 f"1 to {latest}")
    return stored


def _list(storage: Storage, kind: str) -> list[_Stored]:
    return [_get(storage, kind, name, None) for name in _names(storage, kind)]


def _delete(storage: Storage, kind: str, name: str) -> _Stored:
    table = storage.settings.jobs_table
    for _ in range(20):
        stored = _get(storage, kind, name, None)
        pointer = storage.tables.get(table, kind, name)
        if pointer is None:
            continue
        values = {**pointer.values, "deleted": True, "updated": utc_now()}
        try:
            storage.tables.replace(table, values, etag=pointer.etag)
        except ConflictError:
            continue
        logger.info("%s %s: deleted (latest version %d)", kind, name, stored.version)
        return stored
    raise ConflictError(f"{kind} {name}: too many concurrent updates")


def _path_problems(storage: Storage, field: str, path: str, script: str | None = None,
                   *, allow_file: bool = False) -> list[str]:
    """A stored code/model folder must exist in the app's storage (with its script)."""
    try:
        container, prefix = split_storage_path(field, path)
    except SpecError as exc:
        return exc.problems
    uploader = "batchfx model create --path" if field == "path" else "batchfx deployment create"
    upload = f"upload the folder first (`{uploader}` uploads local folders)"
    if not storage.blobs.container_exists(container):
        return [f"{field}: container {container!r} does not exist in "
                f"{storage.settings.account_of(container)} — {upload}, or fix the path {path!r}"]
    if script is not None:
        name = f"{prefix}/{script}" if prefix else script
        if not storage.blobs.exists(container, name):
            return [f"entry_script: {script!r} not found in {field} {path!r} — {upload}"]
        return []
    for refs, _ in storage.blobs.list_pages(container, f"{prefix}/" if prefix else "",
                                            page_size=1):
        if refs:
            return []
    if allow_file and prefix and storage.blobs.exists(container, prefix):
        return []
    return [f"{field}: nothing found under {path!r} — {upload}"]


def _model_entries(code: Mapping[str, Any]) -> list[tuple[str, str]]:
    given = [("model", code["model"])] if code.get("model") else []
    given += [(f"models[{i}]", v) for i, v in enumerate(code.get("models") or [])]
    return [(field, str(v["path"] if isinstance(v, Mapping) else v)) for field, v in given]


def _model_problems(storage: Storage, field: str, value: str) -> list[str]:
    """A registered model must exist; a folder must exist in the app's storage."""
    try:
        reference = parse_model_reference(field, value)
        if reference is not None:
            get_model(storage, reference.name, reference.version)
            return []
    except SpecError as exc:
        return exc.problems
    except NotRegisteredError as exc:
        return [f"{field}: {exc}"]
    return _path_problems(storage, field, value, allow_file=True)


def _pin_models(storage: Storage, record: dict[str, Any]) -> dict[str, Any]:
    """``name@latest`` in a deployment becomes the version it is now, as Azure ML pins a
    deployment's model when it is created."""
    def pinned(value: str) -> str:
        reference = parse_model_reference("model", value)
        if reference is None or reference.version is not None:
            return value
        return f"{reference.name}:{get_model(storage, reference.name).version}"
    out = dict(record)
    if out.get("model"):
        out["model"] = map_model_path(out["model"], pinned)
    settings = dict(out.get("settings") or {})
    if isinstance(settings.get("models"), list):
        settings["models"] = [map_model_path(v, pinned) for v in settings["models"]]
        out["settings"] = settings
    return out


def _code_problems(storage: Storage, code: Mapping[str, Any]) -> list[str]:
    problems = _path_problems(storage, "source_directory", str(code["source_directory"]),
                              str(code["entry_script"]))
    for field, value in _model_entries(code):
        problems += _model_problems(storage, field, value)
    for key, path in (code.get("side_inputs") or {}).items():
        problems += _path_problems(storage, f"side_inputs.{key}", str(path))
    return problems


def register_deployment(storage: Storage, deployment: Deployment
                        ) -> tuple[DeploymentVersion, bool]:
    """Store a deployment as a new version; an unchanged one returns its version, created False."""
    problems = _code_problems(storage, {**deployment.to_record(), **deployment.settings})
    if problems:
        raise SpecError(problems)
    stored, created = _register(storage, DEPLOYMENT_PARTITION, deployment.name,
                                _pin_models(storage, deployment.to_record()))
    return _deployment(stored), created


def _deployment(stored: _Stored) -> DeploymentVersion:
    return DeploymentVersion(Deployment.from_record(stored.record), stored.version,
                             stored.created)


def get_deployment(storage: Storage, name: str, version: int | None = None
                   ) -> DeploymentVersion:
    """A deployment's latest (or given) version; NotRegisteredError lists the known names."""
    return _deployment(_get(storage, DEPLOYMENT_PARTITION, name, version))


def list_deployments(storage: Storage) -> list[DeploymentVersion]:
    """The latest version of every deployment not deleted, by name."""
    return [_deployment(s) for s in _list(storage, DEPLOYMENT_PARTITION)]


def delete_deployment(storage: Storage, name: str) -> DeploymentVersion:
    """Mark a deployment deleted (jobs already started keep their snapshots)."""
    return _deployment(_delete(storage, DEPLOYMENT_PARTITION, name))


def publish_pipeline(storage: Storage, pipeline: Pipeline) -> tuple[PipelineVersion, bool]:
    """Store a pipeline as a new version; an unchanged one returns its version, created False."""
    if pipeline.deployment is not None:
        get_deployment(storage, pipeline.deployment, pipeline.deployment_version)
    elif pipeline.job is not None:
        # Paths that hold placeholders are only known when the pipeline runs.
        static = {k: v for k, v in pipeline.job.items()
                  if k in ("source_directory", "entry_script", "model", "models")
                  and not placeholders(v)}
        if {"source_directory", "entry_script"} <= set(static):
            problems = _code_problems(storage, static)
            if problems:
                raise SpecError(problems)
    stored, created = _register(storage, PIPELINE_PARTITION, pipeline.name, pipeline.to_record())
    return _pipeline(stored), created


def _pipeline(stored: _Stored) -> PipelineVersion:
    return PipelineVersion(Pipeline.from_record(stored.record), stored.version, stored.created)


def get_pipeline(storage: Storage, name: str, version: int | None = None) -> PipelineVersion:
    """A pipeline's latest (or given) version; NotRegisteredError lists the known names."""
    return _pipeline(_get(storage, PIPELINE_PARTITION, name, version))


def list_pipelines(storage: Storage) -> list[PipelineVersion]:
    """The latest version of every pipeline not deleted, by name."""
    return [_pipeline(s) for s in _list(storage, PIPELINE_PARTITION)]


def delete_pipeline(storage: Storage, name: str) -> PipelineVersion:
    """Mark a pipeline deleted; its versions stay readable only to jobs already started."""
    return _pipeline(_delete(storage, PIPELINE_PARTITION, name))



def register_model(storage: Storage, name: str, path: str, description: str = ""
                   ) -> tuple[ModelVersion, bool]:
    """Register the folder (or file) at ``path`` in the app's storage as the next version of
    ``name``; the same path and description as the latest version returns that version."""
    def in_storage(found: str) -> list[str]:
        return _path_problems(storage, "path", found, allow_file=True)

    try:
        registration = ModelRegistration.model_validate(
            {"name": name, "path": path, "description": description},
            context={"stored": in_storage})
    except pydantic.ValidationError as exc:
        raise SpecError(problem_messages(exc, unknown=str)) from None
    record = registration.to_record()
    stored, created = _register(storage, MODEL_PARTITION, name, record)
    return _model(stored), created


def _model(stored: _Stored) -> ModelVersion:
    record = stored.record
    return ModelVersion(str(record["name"]), stored.version, str(record["path"]),
                        str(record.get("description", "")), stored.created)


def get_model(storage: Storage, name: str, version: int | None = None) -> ModelVersion:
    """A model's latest (or given) version; NotRegisteredError lists the known names."""
    return _model(_get(storage, MODEL_PARTITION, name, version))


def list_models(storage: Storage) -> list[ModelVersion]:
    """The latest version of every registered model, by name."""
    return [_model(s) for s in _list(storage, MODEL_PARTITION)]
