"""Schedules: which due times a target has, and the values it is given at each (pure).

A schedule fires a target — ``{"pipeline": ...}``, ``{"deployment": ...}`` or an inline
``{"job": {...}}`` — on a ``recurrence`` (Azure ML's ``frequency``/``interval`` with an
optional ``hours``/``minutes``/``week_days``/``month_days`` pattern, as in Logic Apps) or
a five-field ``cron`` expression. Times are UTC. Parameter values may hold ``{date}``
placeholders filled from the due time, so a nightly run reads last night's partition
however late it starts.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from croniter import croniter

from batchfx.core.errors import SpecError
from batchfx.core.schedule_spec import (
    ScheduleError,
    check_placeholders,
    fill_placeholders,
    parse_parts,
)
from batchfx.core.spec import parse_job_spec

__all__ = [
    "Cron",
    "Frequency",
    "Recurrence",
    "Schedule",
    "ScheduleError",
    "due_times",
    "fill_placeholders",
    "fill_target",
    "latest_due",
    "next_due",
    "parse_schedule",
]

# Far enough for any pattern that can occur (Feb 29 every 4 years); a pattern that never
# occurs in that many periods never will.
_MAX_PERIODS = 400


class Frequency(StrEnum):
    """The unit of a recurrence (Azure ML's names)."""

    MINUTE = "Minute"
    HOUR = "Hour"
    DAY = "Day"
    WEEK = "Week"
    MONTH = "Month"


@dataclass(frozen=True)
class Recurrence:
    """Every ``interval`` ``frequency`` units from the start time, optionally on a pattern."""

    frequency: Frequency
    interval: int = 1
    hours: tuple[int, ...] = ()
    minutes: tuple[int, ...] = ()
    week_days: tuple[int, ...] = ()  # 0 = Monday, as datetime.weekday()
    month_days: tuple[int, ...] = ()

    @property
    def has_pattern(self) -> bool:
        """True when hours, minutes, week days or month days narrow the due times."""
        return bool(self.hours or self.minutes or self.week_days or self.month_days)


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression (minute hour day-of-month month day-of-week), UTC."""

    expression: str


@dataclass(frozen=True)
class Schedule:
    """A validated schedule; ``to_record()`` gives back a mapping ``parse_schedule`` accepts."""

    name: str
    target: dict[str, Any]
    trigger: Recurrence | Cron
    start_time: datetime
    end_time: datetime | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    description: str = ""

    @property
    def target_kind(self) -> str:
        """``pipeline``, ``deployment`` or ``job``."""
        return next(k for k in ("pipeline", "deployment", "job") if k in self.target)

    def to_record(self) -> dict[str, Any]:
        """The normalised schedule as JSON-ready data (start time filled in)."""
        times = {"start_time": self.start_time.isoformat()}
        if self.end_time is not None:
            times["end_time"] = self.end_time.isoformat()
        data: dict[str, Any] = {"name": self.name, "target": self.target}
        if isinstance(self.trigger, Cron):
            data["cron"] = {"expression": self.trigger.expression, **times}
        else:
            r = self.trigger
            recurrence: dict[str, Any] = {"frequency": r.frequency.value,
                                          "interval": r.interval, **times}
            for key in ("hours", "minutes", "month_days"):
                if getattr(r, key):
                    recurrence[key] = list(getattr(r, key))
            if r.week_days:
                recurrence["week_days"] = [calendar.day_name[d] for d in r.week_days]
            data["recurrence"] = recurrence
        data.update(parameters=self.parameters, enabled=self.enabled,
                    description=self.description)
        return data


def whole_minute(moment: datetime) -> datetime:
    """``moment`` rounded up to a whole minute: due times fall on the minute, when the
    schedule timer ticks, so a schedule fires within seconds of them (never up to a minute
    late, as a start at second 37 made every run)."""
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def parse_schedule(data: object, *, now: datetime) -> Schedule:
    """Validate a schedule; ``now`` is the default start time. ScheduleError lists problems."""
    parts, problems = parse_parts(data)
    if problems:
        raise ScheduleError(problems)
    trigger: Recurrence | Cron
    if parts.cron is not None:
        trigger = Cron(parts.cron)
    else:
        assert parts.recurrence is not None
        trigger = Recurrence(Frequency(parts.recurrence["frequency"]),
                             **{k: v for k, v in parts.recurrence.items() if k != "frequency"})
    # The default start is this minute (due at once, as before); a given one is kept or
    # rounded up, never started early.
    start = (whole_minute(parts.start_time) if parts.start_time
             else now.astimezone(UTC).replace(second=0, microsecond=0))
    target = dict(parts.target)
    if "job" in target:
        target["job"] = {"name": parts.name, **target["job"]}
        problems += _job_problems(target["job"], start)
    problems += check_placeholders(target, "target") + check_placeholders(
        parts.parameters, "parameters")
    if parts.end_time is not None and parts.end_time <= start:
        problems.append(f"end_time: got {parts.end_time.isoformat()} — expected a time after "
                        f"start_time {start.isoformat()}")
    if problems:
        raise ScheduleError(problems)
    return Schedule(parts.name, target, trigger, start, parts.end_time, dict(parts.parameters),
                    parts.enabled, parts.description)


def _job_problems(job: Mapping[str, Any], start: datetime) -> list[str]:
    # The inline job is checked as the filled spec the first run would submit, so a typo
    # is refused now rather than recorded as a failed run at 2 a.m.
    try:
        parse_job_spec(fill_placeholders(job, start, "target.job"))
    except SpecError as exc:
        return [f"target.job.{p}" for p in exc.problems]
    except ScheduleError:
        return []  # reported by check_placeholders with the field's full name
    return []


def fill_target(schedule: Schedule, due: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The target and the parameter assignments with placeholders filled from ``due``."""
    target: dict[str, Any] = fill_placeholders(schedule.target, due, "target")
    parameters: dict[str, Any] = fill_placeholders(schedule.parameters, due, "parameters")
    return target, parameters


# --- due times -------------------------------------------------------------------------

def next_due(schedule: Schedule, after: datetime | None) -> datetime | None:
    """The first due time after ``after`` (None: from the start time), or None when none is left."""
    trigger, start = schedule.trigger, schedule.start_time
    found: datetime | None
    if isinstance(trigger, Cron):
        base = start - timedelta(seconds=1) if after is None or after < start else after
        found = croniter(trigger.expression, base).get_next(datetime)
    elif trigger.has_pattern:
        found = _next_in_pattern(trigger, start, after)
    elif after is None or after < start:
        found = start
    else:
        k = _steps_before(trigger, start, after) + 1
        found = _step(trigger, start, k)
        while found <= after:  # month lengths vary; at most one more step
            k += 1
            found = _step(trigger, start, k)
    end = schedule.end_time
    return None if found is None or (end is not None and found > end) else found


def latest_due(schedule: Schedule, after: datetime | None, now: datetime) -> datetime | None:
    """The latest due time in (after, now]: a run of missed windows is caught up once."""
    bound = now if schedule.end_time is None else min(now, schedule.end_time)
    trigger, start = schedule.trigger, schedule.start_time
    found: datetime | None
    if bound < start:
        return None
    if isinstance(trigger, Cron):
        base = bound.replace(microsecond=0) + timedelta(seconds=1)
        found = croniter(trigger.expression, base).get_prev(datetime)
    elif trigger.has_pattern:
        found = _latest_in_pattern(trigger, start, bound)
    else:
        found = _step(trigger, start, _steps_before(trigger, start, bound))
    if found is None or found < start or (after is not None and found <= after):
        return None
    return found


def due_times(schedule: Schedule, after: datetime | None, until: datetime) -> Iterator[datetime]:
    """Every due time in (after, until], in order."""
    found = next_due(schedule, after)
    while found is not None and found <= until:
        yield found
        found = next_due(schedule, found)


_UNIT = {Frequency.MINUTE: timedelta(minutes=1), Frequency.HOUR: timedelta(hours=1),
         Frequency.DAY: timedelta(days=1), Frequency.WEEK: timedelta(weeks=1)}


def _months_between(start: datetime | date, later: datetime | date) -> int:
    return (later.year - start.year) * 12 + later.month - start.month


def _add_months(value: datetime, months: int) -> datetime:
    # Jan 31 + 1 month is Feb 28 (or 29), as in Logic Apps; counted from the start each time.
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    return value.replace(year=year, month=month,
                         day=min(value.day, calendar.monthrange(year, month)[1]))


def _step(r: Recurrence, start: datetime, k: int) -> datetime:
    if r.frequency is Frequency.MONTH:
        return _add_months(start, k * r.interval)
    return start + k * r.interval * _UNIT[r.frequency]


def _steps_before(r: Recurrence, start: datetime, at: datetime) -> int:
    """The largest k ≥ 0 whose step is at or before ``at`` (``at`` ≥ start)."""
    if r.frequency is Frequency.MONTH:
        k = max(_months_between(start, at) // r.interval, 0)
        while k > 0 and _step(r, start, k) > at:
            k -= 1
        return k
    return (at - start) // (r.interval * _UNIT[r.frequency])


def _period_of(r: Recurrence, start: datetime, at: datetime) -> int:
    """Which period (day, Monday-based week or month) after the start's holds ``at``."""
    if r.frequency is Frequency.MONTH:
        return _months_between(start, at)
    days = (at.date() - start.date()).days
    return (days + start.weekday()) // 7 if r.frequency is Frequency.WEEK else days


def _period_days(r: Recurrence, start: datetime, k: int) -> list[date]:
    if r.frequency is Frequency.DAY:
        return [start.date() + timedelta(days=k)]
    if r.frequency is Frequency.WEEK:
        monday = start.date() - timedelta(days=start.weekday()) + timedelta(weeks=k)
        wanted = r.week_days or (start.weekday(),)
        return [monday + timedelta(days=d) for d in sorted(wanted)]
    first = _add_months(start.replace(day=1), k).date()
    length = calendar.monthrange(first.year, first.month)[1]
    days = [first.replace(day=d) for d in range(1, length + 1)]
    if r.week_days:
        return [d for d in days if d.weekday() in r.week_days]
    if r.month_days:
        return [d for d in days if d.day in r.month_days]
    return [first.replace(day=min(start.day, length))]


def _period_times(r: Recurrence, start: datetime, k: int) -> list[datetime]:
    hours = r.hours or (start.hour,)
    minutes = r.minutes or (start.minute,)
    return sorted(datetime.combine(d, time(h, m), tzinfo=UTC)
                  for d in _period_days(r, start, k) for h in hours for m in minutes)


def _latest_in_pattern(r: Recurrence, start: datetime, bound: datetime) -> datetime | None:
    k = _period_of(r, start, bound)
    k -= k % r.interval
    for _ in range(_MAX_PERIODS):
        if k < 0:
            return None
        times = [t for t in _period_times(r, start, k) if start <= t <= bound]
        if times:
            return times[-1]
        k -= r.interval
    return None


def _next_in_pattern(r: Recurrence, start: datetime, after: datetime | None) -> datetime | None:
    lower = start if after is None or after < start else after
    k = max(_period_of(r, start, lower), 0)
    k += -k % r.interval
    for _ in range(_MAX_PERIODS):
        times = [t for t in _period_times(r, start, k)
                 if t >= start and (after is None or t > after)]
        if times:
            return times[0]
        k += r.interval
    return None
