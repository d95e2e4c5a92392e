"""Domain values of a job and its mini-batches, and their wire shapes (table rows, messages)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypedDict

from batchfx.core.job_details import EXTRA_KEYS, Outcome, Partitioning, Reuse, Submission

__all__ = [
    "PART_CHUNK",
    "PART_PROPERTIES",
    "JobRecord",
    "JobState",
    "ManifestRef",
    "MessageBody",
    "MiniBatchMessage",
    "MiniBatchRecord",
    "MiniBatchStatus",
    "decode_body",
    "decode_message",
    "encode_message",
    "join_part",
    "utc_now",
]


def utc_now() -> str:
    """The current time as ISO 8601 UTC text (as rows and reports record times)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class JobState(StrEnum):
    """Where a job is in its life: queued → partitioning → running → finalizing → an end."""

    QUEUED = "queued"
    PARTITIONING = "partitioning"
    RUNNING = "running"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        """Whether nothing more will happen to the job's mini-batches."""
        return self in _FINAL_JOB_STATES


_FINAL_JOB_STATES = {JobState.COMPLETED, JobState.FAILED, JobState.ABORTED, JobState.CANCELED}


class MiniBatchStatus(StrEnum):
    """The state of one mini-batch row, overwritten by its own retries."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """Whether the mini-batch will not be tried again."""
        return self is not MiniBatchStatus.RUNNING


@dataclass(frozen=True)
class ManifestRef:
    """Where a mini-batch's item list lies: a byte range of a manifest page blob."""

    blob: str
    offset: int
    length: int


class MiniBatchMessage(TypedDict, total=False):
    """The queue message for consecutive mini-batches of one manifest page (``count``,
    1 when absent): references only, never data. ``offset``/``length`` cover their lines."""

    job_id: str
    index: int
    manifest: str
    offset: int
    length: int
    count: int


@dataclass(frozen=True)
class MessageBody:
    """A decoded message: ``count`` mini-batches from ``index``, their manifest lines."""

    job_id: str
    index: int
    ref: ManifestRef
    count: int = 1


def encode_message(job_id: str, index: int, ref: ManifestRef, count: int = 1) -> str:
    """The JSON text of a message for ``count`` mini-batches from ``index``."""
    body: MiniBatchMessage = {
        "job_id": job_id,
        "index": index,
        "manifest": ref.blob,
        "offset": ref.offset,
        "length": ref.length,
    }
    if count != 1:
        body["count"] = count
    return json.dumps(body, separators=(",", ":"))


def decode_body(text: str) -> MessageBody:
    """Parse a message; ValueError names what is wrong."""
    try:
        body = json.loads(text)
        count = int(body.get("count", 1))
        if count < 1:
            raise ValueError(f"count {count} is not 1 or more")
        return MessageBody(
            str(body["job_id"]),
            int(body["index"]),
            ManifestRef(str(body["manifest"]), int(body["offset"]), int(body["length"])),
            count,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a batchfx mini-batch message ({exc!s}): {text[:200]!r}") from exc


def decode_message(text: str) -> tuple[str, int, ManifestRef]:
    """Parse a message of one mini-batch (its first, for a message of several)."""
    body = decode_body(text)
    return body.job_id, body.index, body.ref


def mini_batch_key(index: int) -> str:
    """The RowKey of a mini-batch: zero-padded so rows sort in input order."""
    return f"{index:07d}"


@dataclass
class MiniBatchRecord:
    """One row per mini-batch (PartitionKey = job id, RowKey = index), replaced by each try."""

    job_id: str
    index: int
    status: MiniBatchStatus
    items: int = 0
    # Items the partitioner planned (for tabular text cut by bytes an estimate, corrected
    # to the rows read once the mini-batch is scored).
    items_planned: int = 0
    tries: int = 0
    succeeded: int = 0
    failed: int = 0
    rows: int = 0
    worker: str = ""
    message_id: str = ""
    started: str = ""
    ended: str = ""
    lease_until: float = 0.0
    seconds: float = 0.0
    part: str = ""
    header: str = ""
    error_phase: str = ""
    error_type: str = ""
    error_message: str = ""
    error_traceback: str = ""
    error_try: int = 0
    manifest: str = ""
    manifest_offset: int = 0
    manifest_length: int = 0
    # Isolating bad items after the last try: how often it was started (a worker may die
    # during it), its runs, and the blob listing each failed item with its error.
    isolations: int = 0
    isolation_runs: int = 0
    item_errors: str = ""
    # per_input_file: the blob next to the part saying which input file each run of its
    # rows came from (see batchfx.core.output_layout).
    segments: str = ""
    # A small part kept in the row instead of a blob (see batchfx.services.result_parts).
    part_data: bytes = b""

    def to_entity(self) -> dict[str, Any]:
        """The table row."""
        values = {k: v for k, v in self.__dict__.items() if k not in ("job_id", "index")}
        values["status"] = self.status.value
        values["PartitionKey"] = self.job_id
        values["RowKey"] = mini_batch_key(self.index)
        # Table properties hold at most 64 KiB; a traceback is cut, keeping its end.
        values["error_traceback"] = _tail(self.error_traceback, 24_000)
        values["error_message"] = _tail(self.error_message, 8_000)
        del values["part_data"]  # an empty binary property is not written
        if len(self.part_data) > PART_CHUNK * len(PART_PROPERTIES):
            raise ValueError(f"part_data: {len(self.part_data)} bytes do not fit a row; keep "
                             "the part in a blob (result_parts.store_part)")
        for name, start in zip(PART_PROPERTIES, range(0, len(self.part_data), PART_CHUNK),
                               strict=False):
            values[name] = self.part_data[start:start + PART_CHUNK]
        return values

    @classmethod
    def columns(cls, *, without: tuple[str, ...] = ()) -> list[str]:
        """The row's property names (for a query's ``select``), less ``without``."""
        names = [n for n in cls.__dataclass_fields__ if n not in ("job_id", "index", *without)]
        if "part_data" in names:
            names += PART_PROPERTIES[1:]
        return ["PartitionKey", "RowKey", *names]

    @classmethod
    def from_entity(cls, row: dict[str, Any]) -> MiniBatchRecord:
        """Read a table row back."""
        known = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        known["status"] = MiniBatchStatus(row["status"])
        known["job_id"] = row["PartitionKey"]
        known["index"] = int(row["RowKey"])
        known["part_data"] = join_part(row)
        # A select leaves the properties it did not name as None: keep the defaults.
        return cls(**{k: v for k, v in known.items() if v is not None})


# A part kept in the row spans up to eight binary properties: one holds at most 64 KiB,
# and a row at most 1 MiB (with up to ~64 KiB of error text, stored as UTF-16).
PART_CHUNK = 64 * 1024
PART_PROPERTIES = ("part_data", *(f"part_data_{i}" for i in range(1, 8)))


def join_part(row: dict[str, Any]) -> bytes:
    """The part kept in a row (or the part properties a query selected), joined."""
    return b"".join(bytes(row.get(name) or b"") for name in PART_PROPERTIES)


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


@dataclass
class JobRecord:
    """One row per job (PartitionKey ``job``, RowKey = job id)."""

    job_id: str
    name: str
    state: JobState
    spec: dict[str, Any]
    created: str
    output_container: str
    output_prefix: str
    client_request_id: str = ""
    started: str = ""
    ended: str = ""
    items_total: int = 0
    mini_batches_total: int = 0
    partitioned: bool = False
    continuation: str = ""
    reason: str = ""
    error: str = ""
    # Kept together in the row's JSON ``extra`` column (batchfx.core.job_details).
    submission: Submission = field(default_factory=Submission)
    partitioning: Partitioning = field(default_factory=Partitioning)
    reuse: Reuse = field(default_factory=Reuse)
    outcome: Outcome = field(default_factory=Outcome)
    # Keys of the ``extra`` column this version does not know (a newer version wrote
    # them): never read, written back as they were.
    unknown_extra: dict[str, Any] = field(default_factory=dict, repr=False)

    PARTITION = "job"

    def to_entity(self) -> dict[str, Any]:
        """The table row (the spec and the ``extra`` values are stored as JSON text)."""
        values = {k: v for k, v in self.__dict__.items()
                  if k not in ("job_id", "spec", *_EXTRA_FIELDS)}
        values["state"] = self.state.value
        values["spec"] = json.dumps(self.spec, separators=(",", ":"))
        extra: dict[str, Any] = {**self.unknown_extra, **self.submission.to_extra(),
                                 **self.partitioning.to_extra(), **self.reuse.to_extra(),
                                 **self.outcome.to_extra()}
        values["extra"] = json.dumps(extra, separators=(",", ":"))
        values["error"] = _tail(self.error, 24_000)
        values["PartitionKey"] = self.PARTITION
        values["RowKey"] = self.job_id
        return values

    @classmethod
    def from_entity(cls, row: dict[str, Any]) -> JobRecord:
        """Read a table row back (one written by any earlier version too)."""
        known = {k: row[k] for k in cls.__dataclass_fields__
                 if k in row and k not in ("PARTITION", *_EXTRA_FIELDS)}
        known["job_id"] = row["RowKey"]
        known["state"] = JobState(row["state"])
        known["spec"] = json.loads(row["spec"])
        extra = json.loads(row.get("extra") or "{}")
        return cls(**known, submission=Submission.from_extra(extra),
                   partitioning=Partitioning.from_extra(extra), reuse=Reuse.from_extra(extra),
                   outcome=Outcome.from_extra(extra),
                   unknown_extra={k: v for k, v in extra.items() if k not in EXTRA_KEYS})

    @property
    def output_location(self) -> str:
        """``container/prefix`` where the job writes its results and logs."""
        return f"{self.output_container}/{self.output_prefix}"


_EXTRA_FIELDS = ("submission", "partitioning", "reuse", "outcome", "unknown_extra")
