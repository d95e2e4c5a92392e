"""What a job's row keeps beside its columns: one typed value per concept, each written by
one step — what submit recorded (``Submission``), how far partitioning got
(``Partitioning``), the allow_reuse decision (``Reuse``) and what finalize kept
(``Outcome``).

On the wire they share the row's one JSON column, ``extra`` (``ExtraColumn``): flat, a key
only where its value is not the default, under the names every earlier version wrote. So a
row written by an earlier version reads back here (a job survives an app upgrade mid-run),
and a row written here reads back there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from batchfx.core.models import JobModel

__all__ = [
    "EXTRA_KEYS",
    "ExtraColumn",
    "Outcome",
    "Partitioning",
    "Reuse",
    "Submission",
]


class ExtraColumn(TypedDict, total=False):
    """The JSON of a job row's ``extra`` column; an absent key is its value's default."""

    tags: dict[str, str]
    pins: dict[str, str]
    models: list[dict[str, Any]]
    input: int
    pages: int
    input_pages: int
    cursor: dict[str, Any]
    items_estimated: bool
    reuse_key: str
    reused_from: str
    outputs_ready: bool
    final: dict[str, Any]
    counts: dict[str, Any]  # read only: what versions before the one final tally kept
    metrics: dict[str, Any]
    reports_error: str


EXTRA_KEYS = frozenset(ExtraColumn.__annotations__)


@dataclass(frozen=True)
class Submission:
    """What submit recorded beside the spec (``jobs.prepare_job``); never changed after."""

    # Labels the job was submitted with (by a schedule, a blob drop, a deployment's
    # caller); the script's Run sees ``experiment`` and ``parent_run_id`` among them.
    tags: Mapping[str, str] = field(default_factory=dict)
    # The version of each local folder (source_directory, a model, a side input) by its
    # spec field: a folder changed after submit fails the job's next mini-batches.
    pins: Mapping[str, str] = field(default_factory=dict)
    # The job's models, resolved (a registered ``name@latest`` pinned to its version).
    models: tuple[JobModel, ...] = ()

    def to_extra(self) -> ExtraColumn:
        out: ExtraColumn = {}
        if self.tags:
            out["tags"] = dict(self.tags)
        if self.pins:
            out["pins"] = dict(self.pins)
        if self.models:
            out["models"] = [m.to_record() for m in self.models]
        return out

    @classmethod
    def from_extra(cls, data: Mapping[str, Any]) -> Submission:
        return cls(tags=dict(data.get("tags") or {}), pins=dict(data.get("pins") or {}),
                   models=tuple(JobModel.from_record(r) for r in data.get("models") or []))


@dataclass(frozen=True)
class Partitioning:
    """How far partitioning got: saved by the partitioner with each page (and each input
    it finishes), so its next call goes on from there (``job_transitions.save_page``,
    ``next_input``, ``reuse_earlier``)."""

    # Manifest pages written, over all inputs (page n is ``manifests/page-<n>.jsonl``).
    pages: int = 0
    # Which of the spec's inputs is being listed (several are listed in turn).
    input_index: int = 0
    # ``pages`` when that input's listing began: a later page means it has started.
    input_first_page: int = 0
    # Tabular inputs: where inside the listing page the next page begins (None: after it).
    cursor: dict[str, Any] | None = None
    # Whether ``items_total`` is an estimate (tabular text cut by bytes, rows not counted).
    items_estimated: bool = False

    def to_extra(self) -> ExtraColumn:
        out: ExtraColumn = {}
        if self.pages:
            out["pages"] = self.pages
        if self.input_index:
            out["input"] = self.input_index
        if self.input_first_page:
            out["input_pages"] = self.input_first_page
        if self.cursor is not None:
            out["cursor"] = self.cursor
        if self.items_estimated:
            out["items_estimated"] = True
        return out

    @classmethod
    def from_extra(cls, data: Mapping[str, Any]) -> Partitioning:
        cursor = data.get("cursor")
        return cls(pages=int(data.get("pages") or 0), input_index=int(data.get("input") or 0),
                   input_first_page=int(data.get("input_pages") or 0),
                   cursor=dict(cursor) if cursor is not None else None,
                   items_estimated=bool(data.get("items_estimated")))


@dataclass(frozen=True)
class Reuse:
    """allow_reuse, decided by the partitioner's first call (``partitioner._check_reuse``)."""

    # The hash of the job's inputs (their ETags), code, models and settings ("" until
    # checked); a completed job is remembered under it for later jobs.
    key: str = ""
    # The earlier completed job with the same key whose results this one copies ("" none).
    reused_from: str = ""

    def to_extra(self) -> ExtraColumn:
        out: ExtraColumn = {}
        if self.key:
            out["reuse_key"] = self.key
        if self.reused_from:
            out["reused_from"] = self.reused_from
        return out

    @classmethod
    def from_extra(cls, data: Mapping[str, Any]) -> Reuse:
        return cls(key=str(data.get("reuse_key") or ""),
                   reused_from=str(data.get("reused_from") or ""))


@dataclass(frozen=True)
class Outcome:
    """What finalize kept with the ended job (``finalize._end``, ``job_transitions
    .keep_outcome``)."""

    # Whether the reports (and a completed job's output files) are written: clients wait
    # for this flag, not only for the state (``reports_error`` says why they are not).
    outputs_ready: bool = False
    # The counts of the job's one final tally (``FinalTally.counts``), which the view of
    # the ended job shows; None before finalize. (Rows of versions before the final tally
    # kept them as ``counts``: read as these.)
    final: dict[str, Any] | None = None
    # What the script logged with Run.log and Run.tag, summed up (``run_metrics``); {} when
    # it logged nothing.
    metrics: dict[str, Any] = field(default_factory=dict)
    # Why writing the reports failed ("" when they were written).
    reports_error: str = ""

    def to_extra(self) -> ExtraColumn:
        out: ExtraColumn = {}
        if self.outputs_ready:
            out["outputs_ready"] = True
        if self.final is not None:
            out["final"] = self.final
        if self.metrics:
            out["metrics"] = self.metrics
        if self.reports_error:
            out["reports_error"] = self.reports_error
        return out

    @classmethod
    def from_extra(cls, data: Mapping[str, Any]) -> Outcome:
        final = data.get("final") or data.get("counts")
        return cls(outputs_ready=bool(data.get("outputs_ready")),
                   final=dict(final) if final else None,
                   metrics=dict(data.get("metrics") or {}),
                   reports_error=str(data.get("reports_error") or ""))
