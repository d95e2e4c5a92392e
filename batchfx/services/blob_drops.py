"""Blob-drop auto-triggering: a ``_SUCCESS`` marker or a job file in the inbox submits a job.

Users drop data under ``<inbox>/<deployment>/<folder...>/`` and then a ``_SUCCESS``
marker (the Spark convention: the folder is complete), or drop a job file
``<inbox>/<deployment>/<name>.job.yml`` (or ``.job.yaml``/``.job.json``) holding a
partial job spec for that deployment. Ordinary data files trigger nothing.

Event Grid delivers at least once, so a drop is submitted with the client request id
``drop:<blob>:<etag>``: the same event twice submits one job, a new marker (new ETag)
a new one. Each handled drop leaves a row (PartitionKey ``drop``) saying what became
of it, so a rejected drop is reported rather than lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import yaml

from batchfx.core.deployments import check_name
from batchfx.core.errors import SpecError, StorageNotFoundError
from batchfx.core.records import JobRecord, utc_now
from batchfx.core.spec_io import load_yaml
from batchfx.services.invocations import job_spec_for
from batchfx.services.registry import NotRegisteredError
from batchfx.storage import Storage

__all__ = [
    "EVENT_SUBJECT_SUFFIXES",
    "SUCCESS_MARKER",
    "Drop",
    "DropKind",
    "DropRecord",
    "DropState",
    "StartJob",
    "classify",
    "drop_key",
    "drop_request_id",
    "etag_from_properties",
    "handle_drop",
    "list_drops",
    "parse_job_file",
]

logger = logging.getLogger(__name__)

SUCCESS_MARKER = "_SUCCESS"
JOB_FILE_SUFFIXES = (".job.yml", ".job.yaml", ".job.json")
# What the Event Grid subscription needs to deliver (subject filter); everything else is
# data the function would only ignore — after the host had downloaded it.
EVENT_SUBJECT_SUFFIXES = (f"/{SUCCESS_MARKER}", *JOB_FILE_SUFFIXES)
DROP_PARTITION = "drop"
MAX_JOB_FILE_BYTES = 256 * 1024


class DropKind(StrEnum):
    """What a blob in the inbox is."""

    SUCCESS_MARKER = "success-marker"
    JOB_FILE = "job-file"
    IGNORED = "ignored"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Drop:
    """One classified inbox blob; ``inputs`` is the folder a marker completes."""

    kind: DropKind
    blob: str
    deployment: str = ""
    inputs: str = ""
    reason: str = ""


def _rejected(blob: str, reason: str, deployment: str = "") -> Drop:
    return Drop(DropKind.REJECTED, blob, deployment, reason=reason)


def classify(blob_name: str, inbox: str) -> Drop:
    """Classify ``<inbox>/<deployment>/...`` (the container-qualified name the trigger gives)."""
    if "\\" in blob_name:
        return _rejected(blob_name, "backslashes are not allowed in drop names; "
                                    "separate folders with '/'")
    container, _, rest = blob_name.partition("/")
    if container != inbox:
        return _rejected(blob_name, f"not in the inbox container {inbox!r}; drop into "
                                    f"{inbox}/<deployment>/...")
    if not rest or rest.endswith("/"):
        return Drop(DropKind.IGNORED, blob_name)  # folder placeholders some tools write
    segments = rest.split("/")
    if {"", ".", ".."} & set(segments):
        return _rejected(blob_name, "empty, '.' and '..' path segments are not allowed")
    deployment, last = segments[0], segments[-1]
    if last == SUCCESS_MARKER:
        if len(segments) < 3:
            return _rejected(blob_name, f"a {SUCCESS_MARKER} marker completes a folder: put "
                                        f"it at {inbox}/<deployment>/<folder>/{SUCCESS_MARKER}",
                             deployment)
        kind = DropKind.SUCCESS_MARKER
    elif last.endswith(JOB_FILE_SUFFIXES):
        if len(segments) != 2:
            return _rejected(blob_name, f"job files go directly under the deployment: "
                                        f"{inbox}/<deployment>/<name>.job.yml", deployment)
        if last.startswith(JOB_FILE_SUFFIXES):
            return _rejected(blob_name, "the job file needs a name before .job.yml/.job.json",
                             deployment)
        kind = DropKind.JOB_FILE
    else:
        return Drop(DropKind.IGNORED, blob_name)  # data arrives before its marker
    problem = check_name("deployment", deployment)
    if problem is not None:
        return _rejected(blob_name, f"the folder under {inbox}/ names the deployment; "
                                    f"{problem}", deployment)
    inputs = f"{inbox}/{'/'.join(segments[:-1])}" if kind is DropKind.SUCCESS_MARKER else ""
    return Drop(kind, blob_name, deployment, inputs)


def parse_job_file(name: str, data: bytes) -> dict[str, Any]:
    """A job file's partial job spec (JSON for ``.job.json``, else YAML); SpecError if bad."""
    if len(data) > MAX_JOB_FILE_BYTES:
        raise SpecError([f"{name}: {len(data)} bytes; a job file is at most "
                         f"{MAX_JOB_FILE_BYTES} bytes"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError([f"{name}: not UTF-8 text"]) from None
    try:
        doc = json.loads(text) if name.endswith(".json") else load_yaml(text)
    except json.JSONDecodeError as exc:
        raise SpecError([f"{name}: invalid JSON — {exc}"]) from None
    except RecursionError:
        raise SpecError([f"{name}: nested too deeply to read"]) from None
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or exc
        raise SpecError([f"{name}: invalid YAML — {reason}"]) from None
    if not isinstance(doc, dict):
        raise SpecError([f"{name}: expected a mapping of job settings (inputs, output, "
                         f"parameters…), got {type(doc).__name__}"])
    return {str(k): v for k, v in doc.items()}


def etag_from_properties(properties: Mapping[str, Any] | None) -> str:
    """The ETag in a blob trigger's ``blob_properties`` (the host's shape), or ''."""
    for key in ("ETag", "Etag", "etag"):
        value = (properties or {}).get(key)
        if isinstance(value, str) and value.strip('"'):
            return value
    return ""


def _plain_etag(etag: str) -> str:
    # The SDK quotes ETags ('"0x8D…"'); the host may not: one spelling for the request id.
    return etag.strip().strip('"')


def drop_request_id(blob_name: str, etag: str) -> str:
    """The client request id of a drop: one job per blob version, whatever the redeliveries."""
    return f"drop:{blob_name}:{_plain_etag(etag)}"


def drop_key(blob_name: str, etag: str) -> str:
    """The RowKey of a drop: blob names may hold characters RowKeys may not ('/', '#', '?')."""
    return hashlib.sha256(f"{blob_name}\n{_plain_etag(etag)}".encode()).hexdigest()


class DropState(StrEnum):
    """What became of a handled drop."""

    SUBMITTED = "submitted"
    REJECTED = "rejected"


@dataclass(frozen=True)
class DropRecord:
    """One handled drop (PartitionKey ``drop``, RowKey = hash of blob name and ETag)."""

    blob: str
    etag: str
    state: DropState
    time: str
    kind: str = ""
    deployment: str = ""
    job_id: str = ""
    reason: str = ""

    @property
    def key(self) -> str:
        """The RowKey (see ``drop_key``)."""
        return drop_key(self.blob, self.etag)

    def to_entity(self) -> dict[str, Any]:
        """The table row."""
        return {"PartitionKey": DROP_PARTITION, "RowKey": self.key, "blob": self.blob,
                "etag": self.etag, "state": self.state.value, "time": self.time,
                "kind": self.kind, "deployment": self.deployment, "job_id": self.job_id,
                "reason": self.reason[:30_000]}

    @classmethod
    def from_entity(cls, row: Mapping[str, Any]) -> DropRecord:
        """Read a table row back."""
        return cls(str(row["blob"]), str(row.get("etag", "")), DropState(row["state"]),
                   str(row.get("time", "")), str(row.get("kind", "")),
                   str(row.get("deployment", "")), str(row.get("job_id", "")),
                   str(row.get("reason", "")))

    def view(self) -> dict[str, str]:
        """The JSON shape for ``GET /api/drops`` and the CLI."""
        return {"blob": self.blob, "etag": self.etag, "state": self.state.value,
                "time": self.time, "kind": self.kind, "deployment": self.deployment,
                "job_id": self.job_id, "reason": self.reason}


def _current_etag(storage: Storage, blob_name: str) -> str:
    container, _, name = blob_name.partition("/")
    for ref in storage.blobs.list_names(container, name):
        if ref.name == name:
            return ref.etag
    return ""


def _target(storage: Storage, drop: Drop) -> dict[str, Any]:
    """What a drop runs: the deployment over the marker's folder, or the job file's target."""
    if drop.kind is DropKind.SUCCESS_MARKER:
        return {"deployment": drop.deployment, "inputs": drop.inputs}
    container, _, name = drop.blob.partition("/")
    try:
        data = storage.blobs.download(container, name)
    except StorageNotFoundError:
        raise SpecError([f"{drop.blob}: the job file no longer exists; drop it again"]) from None
    doc = parse_job_file(drop.blob, data)
    given = doc.get("deployment", drop.deployment)
    if given != drop.deployment:
        raise SpecError([f"deployment: got {given!r} in a job file under "
                         f"{drop.deployment!r} — the folder names the deployment; "
                         "leave the field out"])
    doc["deployment"] = drop.deployment
    return doc


def _save(storage: Storage, record: DropRecord) -> DropRecord:
    # Upsert: two deliveries racing through handle_drop reach the same outcome.
    storage.tables.replace(storage.settings.jobs_table, record.to_entity(), etag=None)
    return record


def _earlier(storage: Storage, blob_name: str, etag: str) -> DropRecord | None:
    found = storage.tables.get(storage.settings.jobs_table, DROP_PARTITION,
                               drop_key(blob_name, etag))
    return None if found is None else DropRecord.from_entity(found.values)


class StartJob(Protocol):
    """Starts a job as ``batchfx.api.starting.start_job`` does; returns (job, created)."""

    def __call__(self, spec: dict[str, Any], *, client_request_id: str,
                 tags: dict[str, str]) -> Awaitable[tuple[JobRecord, bool]]: ...


async def handle_drop(storage: Storage, start: StartJob, blob_name: str,
                      etag: str) -> DropRecord | None:
    """Submit the job a drop asks for (once per blob version); None for a data file.

    A drop batchfx cannot run (unknown deployment, bad job file, empty folder) is
    recorded as rejected with the reason; storage failures raise so the event is retried.
    An event delivered again returns the recorded outcome.
    """
    drop = classify(blob_name, storage.settings.inbox_container)
    if drop.kind is DropKind.IGNORED:
        logger.debug("blob drop %s: data, not a trigger", blob_name)
        return None
    if not _plain_etag(etag):
        etag = _current_etag(storage, blob_name)
    # A recorded outcome is final: Event Grid redelivers, users drop again (a new ETag).
    # Checked first, so a deployment deleted since cannot turn a submitted drop rejected.
    earlier = _earlier(storage, blob_name, etag)
    if earlier is not None:
        logger.info("blob drop %s: delivered again; %s earlier", blob_name,
                    earlier.state.value)
        return earlier
    record = DropRecord(blob_name, etag, DropState.REJECTED, utc_now(), drop.kind.value,
                        drop.deployment)
    if drop.kind is DropKind.REJECTED:
        return _reject(storage, record, drop.reason)
    if not _plain_etag(etag):
        return _reject(storage, record, "the blob no longer exists; drop it again")
    try:
        spec = job_spec_for(storage, _target(storage, drop))
        job, created = await start(spec, client_request_id=drop_request_id(blob_name, etag),
                                   tags={"trigger": "blob-drop", "blob": blob_name[:256],
                                         "deployment": drop.deployment})
    except SpecError as exc:
        return _reject(storage, record, "; ".join(exc.problems))
    except NotRegisteredError as exc:
        return _reject(storage, record, str(exc))
    logger.info("blob drop %s: %s job %s", blob_name,
                "submitted" if created else "already submitted as", job.job_id)
    return _save(storage, DropRecord(blob_name, etag, DropState.SUBMITTED, record.time,
                                     drop.kind.value, drop.deployment, job.job_id))


def _reject(storage: Storage, record: DropRecord, reason: str) -> DropRecord:
    logger.error("blob drop %s rejected: %s", record.blob, reason)
    return _save(storage, DropRecord(record.blob, record.etag, DropState.REJECTED, record.time,
                                     record.kind, record.deployment, reason=reason))


def list_drops(storage: Storage, *, limit: int = 100) -> list[DropRecord]:
    """The most recently handled drops, newest first."""
    rows = storage.tables.query(storage.settings.jobs_table, DROP_PARTITION)
    drops = [DropRecord.from_entity(r) for r in rows]
    drops.sort(key=lambda d: d.time, reverse=True)
    return drops[:limit]
