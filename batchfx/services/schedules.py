"""Schedules in Table storage (PartitionKey ``schedule``, RowKey = name), and firing them.

A timer run fires each enabled schedule's latest due time once: the job is started
with the client request id ``schedule:<name>:<due>``, so two runs that race for one due
time (a late ``past_due`` run beside the regular one) get the same job, and the
schedule's ``last_due`` only moves under its ETag.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from batchfx.core.errors import (
    BatchfxError,
    ConflictError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    SpecError,
    StorageError,
    StorageNotFoundError,
)
from batchfx.core.records import JobRecord
from batchfx.core.recurrence import (
    Schedule,
    ScheduleError,
    fill_target,
    latest_due,
    next_due,
    parse_schedule,
)
from batchfx.services.invocations import job_spec_for
from batchfx.services.registry import NotRegisteredError
from batchfx.storage import Entity, Storage

__all__ = [
    "PARTITION",
    "Firing",
    "ScheduleExistsError",
    "ScheduleNotFoundError",
    "ScheduleRecord",
    "StartJob",
    "create_schedule",
    "delete_schedule",
    "fire_due_schedules",
    "fire_schedule",
    "get_schedule",
    "list_schedules",
    "record_failure",
    "record_fired",
    "schedule_job_spec",
    "schedule_request_id",
    "schedule_view",
    "set_enabled",
]

logger = logging.getLogger(__name__)

PARTITION = "schedule"
_TRIES = 5


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _time(text: object) -> datetime | None:
    return datetime.fromisoformat(str(text)) if text else None


@dataclass(frozen=True)
class ScheduleRecord:
    """A stored schedule, what it last fired, and the ETag its updates must match."""

    schedule: Schedule
    enabled: bool
    created: datetime
    not_before: datetime  # due times before it are never fired: creation, or re-enabling
    last_due: datetime | None = None
    last_job_id: str = ""
    last_error: str = ""
    last_fired: str = ""
    etag: str = ""

    @property
    def name(self) -> str:
        """The schedule's name (its RowKey)."""
        return self.schedule.name

    @property
    def after(self) -> datetime:
        """Due times at or before this have been fired (or are skipped)."""
        floor = self.not_before - timedelta(microseconds=1)
        return floor if self.last_due is None else max(self.last_due, floor)

    @classmethod
    def from_entity(cls, entity: Entity) -> ScheduleRecord:
        """Read a table row back."""
        row = entity.values
        created = _time(row["created"])
        assert created is not None
        schedule = parse_schedule(json.loads(row["spec"]), now=created)
        return cls(schedule, bool(row.get("enabled", True)), created,
                   _time(row.get("not_before")) or created, _time(row.get("last_due")),
                   str(row.get("last_job_id", "")), str(row.get("last_error", "")),
                   str(row.get("last_fired", "")), entity.etag)


def _entity(schedule: Schedule, created: datetime) -> dict[str, Any]:
    spec = schedule.to_record()
    spec.pop("enabled")  # the column is the truth: enable/disable change only it
    return {"PartitionKey": PARTITION, "RowKey": schedule.name,
            "spec": json.dumps(spec, separators=(",", ":")), "enabled": schedule.enabled,
            # From the minute of creation: a schedule without a start_time is due at that
            # whole minute (schedules.parse_schedule), so it runs at once.
            "created": created.isoformat(),
            "not_before": created.replace(second=0, microsecond=0).isoformat(),
            "last_due": "", "last_job_id": "", "last_error": "", "last_fired": "",
            "deleted": False}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _found(storage: Storage, name: str) -> Entity | None:
    found = storage.tables.get(storage.settings.jobs_table, PARTITION, name)
    return None if found is None or found.values.get("deleted") else found


def create_schedule(storage: Storage, data: object, *, now: datetime | None = None
                    ) -> ScheduleRecord:
    """Validate and store a schedule; ScheduleExistsError when the name is taken."""
    created = (now or _now()).astimezone(UTC).replace(microsecond=0)
    schedule = parse_schedule(data, now=created)
    _check_target(storage, schedule)
    values = _entity(schedule, created)
    table = storage.settings.jobs_table
    try:
        etag = storage.tables.insert(table, values)
    except ConflictError:
        earlier = storage.tables.get(table, PARTITION, schedule.name)
        if earlier is None or not earlier.values.get("deleted"):
            raise ScheduleExistsError(
                f"schedule {schedule.name!r} exists already — delete it first "
                "(DELETE /api/schedules/{name}) or choose another name") from None
        etag = storage.tables.replace(table, values, etag=earlier.etag)
    logger.info("schedule %s: created (%s)", schedule.name, schedule.target_kind)
    return ScheduleRecord.from_entity(Entity(values, etag))


def _check_target(storage: Storage, schedule: Schedule) -> None:
    # Built once as for its first due time, so an unknown pipeline, a parameter it does not
    # declare or a bad deployment setting is refused now rather than at 2 a.m.
    if schedule.target_kind == "job":
        return  # checked by parse_schedule
    what = f"target ({schedule.target_kind} {schedule.target[schedule.target_kind]!r})"
    try:
        schedule_job_spec(storage, schedule, schedule.start_time)
    except SpecError as exc:
        raise ScheduleError([f"{what}: {p}" for p in exc.problems]) from None
    except NotRegisteredError as exc:
        raise ScheduleError([f"{what}: {exc}"]) from None


def get_schedule(storage: Storage, name: str) -> ScheduleRecord:
    """The stored schedule; ScheduleNotFoundError when there is none."""
    found = _found(storage, name)
    if found is None:
        raise ScheduleNotFoundError(f"no schedule named {name!r} — list them with "
                                    "GET /api/schedules")
    return ScheduleRecord.from_entity(found)


def list_schedules(storage: Storage) -> list[ScheduleRecord]:
    """Every schedule, by name."""
    records = []
    # The query gives no ETags; a row is read again before it is updated.
    for row in storage.tables.query(storage.settings.jobs_table, PARTITION):
        if row.get("deleted"):
            continue
        try:
            records.append(ScheduleRecord.from_entity(Entity(row, "")))
        except ScheduleError as exc:  # stored by an older batchfx with other rules
            logger.error("schedule %s: stored spec is refused now, not fired — delete it "
                         "and create it again: %s", row.get("RowKey"), exc)
    return records


def _change(storage: Storage, name: str, changes: Mapping[str, Any]) -> ScheduleRecord:
    """Merge ``changes`` into the schedule's row under its ETag, reading it again on a race."""
    table = storage.settings.jobs_table
    for _ in range(_TRIES):
        found = _found(storage, name)
        if found is None:
            raise ScheduleNotFoundError(f"no schedule named {name!r}")
        values = {**found.values, **changes}
        try:
            etag = storage.tables.replace(table, values, etag=found.etag)
        except ConflictError:
            continue  # a timer run recorded a firing meanwhile; apply the change to its row
        return ScheduleRecord.from_entity(Entity(values, etag))
    raise ConflictError(f"schedule {name!r}: changed by others {_TRIES} times in a row; "
                        "try again")


def set_enabled(storage: Storage, name: str, enabled: bool, *, now: datetime | None = None
                ) -> ScheduleRecord:
    """Enable or disable a schedule; windows missed while disabled are not made up."""
    record = get_schedule(storage, name)
    if record.enabled == enabled:
        return record
    changes: dict[str, Any] = {"enabled": enabled}
    if enabled:
        changes["not_before"] = (now or _now()).astimezone(UTC).replace(microsecond=0) \
            .isoformat()
    logger.info("schedule %s: %s", name, "enabled" if enabled else "disabled")
    return _change(storage, name, changes)


def delete_schedule(storage: Storage, name: str) -> None:
    """Delete a schedule (its jobs stay)."""
    # Kept as a row marked deleted (TableStore has no delete); create() reuses the row.
    _change(storage, name, {"deleted": True, "enabled": False})
    logger.info("schedule %s: deleted", name)


def record_fired(storage: Storage, name: str, due: datetime, job_id: str, etag: str) -> str:
    """Record that ``due`` started ``job_id``; ConflictError if the row changed since ``etag``."""
    changes = {"PartitionKey": PARTITION, "RowKey": name, "last_due": due.isoformat(),
               "last_job_id": job_id, "last_error": "", "last_fired": _now().isoformat()}
    return storage.tables.merge(storage.settings.jobs_table, changes, etag=etag)


def record_failure(storage: Storage, name: str, error: str, etag: str, *,
                   skipped: datetime | None = None) -> str:
    """Record why a firing failed; with ``skipped`` that due time is not tried again."""
    changes: dict[str, Any] = {"PartitionKey": PARTITION, "RowKey": name,
                               "last_error": error[:16_000], "last_fired": _now().isoformat()}
    if skipped is not None:
        changes["last_due"] = skipped.isoformat()
    return storage.tables.merge(storage.settings.jobs_table, changes, etag=etag)


# --- firing ----------------------------------------------------------------------------

class StartJob(Protocol):
    """Starts a job as ``batchfx.api.starting.start_job`` does; returns (job, created)."""

    def __call__(self, spec: dict[str, Any], *, client_request_id: str,
                 tags: dict[str, str]) -> Awaitable[tuple[JobRecord, bool]]: ...


@dataclass(frozen=True)
class Firing:
    """What one timer run did with one schedule's due time."""

    schedule: str
    due: datetime
    job_id: str = ""
    created: bool = False
    error: str = ""


def schedule_request_id(name: str, due: datetime) -> str:
    """The client request id of a schedule's job for one due time: one job per due time."""
    return f"schedule:{name}:{due.isoformat()}"


def schedule_job_spec(storage: Storage, schedule: Schedule, due: datetime) -> dict[str, Any]:
    """The job spec a schedule submits for ``due``, its placeholders filled."""
    target, assignments = fill_target(schedule, due)
    if "job" in target:
        job: dict[str, Any] = target["job"]
        return job
    return job_spec_for(storage, target, assignments or None)


def _refused(exc: BaseException) -> bool:
    # The target refused the run (a bad spec, a deleted pipeline, inputs that are not
    # there): that due time is skipped. Any other failure (storage, the Durable client)
    # is tried again at the next tick — the request id keeps it to one job.
    if isinstance(exc, StorageError):
        return isinstance(exc, StorageNotFoundError)
    return isinstance(exc, BatchfxError)


async def fire_schedule(storage: Storage, record: ScheduleRecord, now: datetime,
                        start: StartJob) -> Firing | None:
    """Start the job of the schedule's latest due time, if one is due; None when none is."""
    name = record.name
    due = latest_due(record.schedule, record.after, now)
    if due is None:
        return None
    etag = record.etag
    if not etag:  # a listed record: read it again for the ETag its update must match
        found = _found(storage, name)
        if found is None:
            return None
        etag = found.etag
    try:
        spec = schedule_job_spec(storage, record.schedule, due)
        job, created = await start(spec, client_request_id=schedule_request_id(name, due),
                                   tags={"schedule": name, "due": due.isoformat()})
    except Exception as exc:
        skipped = _refused(exc)
        error = f"due {due.isoformat()}: {type(exc).__name__}: {exc}"
        if skipped:
            logger.error("schedule %s: %s (this due time is skipped)", name, error)
        else:
            logger.exception("schedule %s: due %s failed; tried again at the next tick", name,
                             due.isoformat())
        try:
            record_failure(storage, name, error, etag, skipped=due if skipped else None)
        except ConflictError:
            logger.info("schedule %s: changed meanwhile; failure not recorded", name)
        except StorageError:
            logger.exception("schedule %s: failure not recorded", name)
        return Firing(name, due, error=error)
    try:
        record_fired(storage, name, due, job.job_id, etag)
    except ConflictError:
        # Another run got there first; the request id gave both runs the same job.
        logger.info("schedule %s: due %s recorded by another run", name, due.isoformat())
    except StorageError:
        # Not recorded: the next tick finds the same due time and the same job (request id).
        logger.exception("schedule %s: due %s started job %s but was not recorded", name,
                         due.isoformat(), job.job_id)
    logger.info("schedule %s: due %s %s job %s", name, due.isoformat(),
                "started" if created else "already had", job.job_id)
    return Firing(name, due, job.job_id, created)


async def fire_due_schedules(storage: Storage, now: datetime, start: StartJob) -> list[Firing]:
    """Fire every enabled schedule that is due; one schedule's failure never stops the rest."""
    fired: list[Firing] = []
    for listed in list_schedules(storage):
        if not listed.enabled:
            continue
        try:
            record = get_schedule(storage, listed.name)  # fresh, with its ETag
        except ScheduleNotFoundError:
            continue  # deleted since the listing
        except StorageError:
            logger.exception("schedule %s: could not be read; tried at the next tick",
                             listed.name)
            continue
        if record.enabled:
            firing = await fire_schedule(storage, record, now, start)
            if firing is not None:
                fired.append(firing)
    return fired


def schedule_view(record: ScheduleRecord, now: datetime,
                  last_job: JobRecord | None = None) -> dict[str, Any]:
    """The JSON shape of a schedule for the HTTP API and the CLI."""
    pending = latest_due(record.schedule, record.after, now) if record.enabled else None
    upcoming = pending or next_due(record.schedule, max(record.after, now))
    spec = record.schedule.to_record()
    spec.pop("enabled")
    view: dict[str, Any] = {
        **spec,
        "enabled": record.enabled,
        "created": record.created.isoformat(),
        "next_due": _iso(upcoming) if record.enabled else None,
        "last_due": _iso(record.last_due) or None,
        "last_job_id": record.last_job_id or None,
        "last_error": record.last_error or None,
        "last_fired": record.last_fired or None,
    }
    if last_job is not None:
        view["last_job"] = {"id": last_job.job_id, "state": last_job.state.value,
                            "created": last_job.created}
    return view
