"""Schedules: which due times a target has, and the values it is given at each (pure).

A schedule fires a target — ``{"pipeline": ...}``, ``{"deployment": ...}`` or an inline
``{"job": {...}}`` — on a ``recurrence`` (Azure ML's ``frequency``/``interval`` with an
optional ``hours``/``minutes``/``week_days``/``month_days`` pattern, as in Logic Apps) or
a five-field ``cron`` expression. Times are UTC. Parameter values may hold ``{date}``
placeholders filled from the due time, so a nightly run reads last night's partition
however late it starts.

A recurrence's due times are a dateutil rrule (RFC 5545): FREQ and INTERVAL are the
frequency and interval, BYHOUR/BYMINUTE/BYDAY/BYMONTHDAY the pattern (each the start
time's when not given), weeks start on Monday, and DTSTART is the start time, before which
nothing is due. Three things are not rrule's and are spelled out here:

- Month ends (``_month_end_clamped``): Logic Apps runs a monthly recurrence from Jan 31 on
  Feb 28 (29), Mar 31, Apr 30; rrule's BYMONTHDAY=31 skips the short months instead. The
  rule is the day of the start together with the last day of the months that can be
  shorter than it (an rruleset).
- Where to read from (``_period``, ``_period_start``): rrule reads every occurrence from
  DTSTART on, half a million a year for a schedule every minute, and the timer asks every
  minute. The rule is begun at the period (minute, hour, day, Monday-based week or month)
  that holds the time asked about, rounded to a multiple of the interval, as rrule counts
  the interval from DTSTART.
- Looking back (``_latest``): rrule reads forwards only, so the latest due time is read
  from one period back, then 3, 7, 15 … until one is found.

A pattern that occurs at all recurs within a few periods (Feb 29 alone: 8 years across
2100); one that never occurs (days 30 and 31 of February alone) reads to year 9999, once
per schedule (``_first_due`` keeps the first due time).

Times are UTC only (schedule_spec refuses another time zone), so there is no daylight
saving time to handle and rrule's time zone support is not used.
"""

from __future__ import annotations

import calendar
import functools
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from croniter import croniter
from dateutil import rrule as rr
from dateutil.relativedelta import relativedelta

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
    parts = parse_parts(data)
    trigger: Recurrence | Cron
    if parts.cron is not None:
        trigger = Cron(parts.cron.expression)
    else:
        r = parts.recurrence
        assert r is not None
        trigger = Recurrence(Frequency(r.frequency), r.interval, r.hours, r.minutes,
                             r.week_days, r.month_days)
    # The default start is this minute (due at once, as before); a given one is kept or
    # rounded up, never started early.
    start = (whole_minute(parts.start_time) if parts.start_time
             else now.astimezone(UTC).replace(second=0, microsecond=0))
    target = dict(parts.target)
    problems: list[str] = []
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
    else:
        found = _first_due(trigger, start)
        if found is not None and after is not None and after >= found:
            k = _period(trigger, start, after)
            found = _rule(trigger, start, k + -k % trigger.interval).after(after)
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
    else:
        first = _first_due(trigger, start)
        found = None if first is None or bound < first else _latest(trigger, start, bound)
    if found is None or found < start or (after is not None and found <= after):
        return None
    return found


def due_times(schedule: Schedule, after: datetime | None, until: datetime) -> Iterator[datetime]:
    """Every due time in (after, until], in order."""
    found = next_due(schedule, after)
    trigger, start = schedule.trigger, schedule.start_time
    if isinstance(trigger, Cron):
        while found is not None and found <= until:
            yield found
            found = next_due(schedule, found)
    elif found is not None:  # one rule, read on from the first
        k = _period(trigger, start, found)
        rule = _rule(trigger, start, k - k % trigger.interval)
        bound = until if schedule.end_time is None else min(until, schedule.end_time)
        yield from itertools.takewhile(lambda due: due <= bound, rule.xafter(found, inc=True))


_FREQ = {Frequency.MINUTE: rr.MINUTELY, Frequency.HOUR: rr.HOURLY, Frequency.DAY: rr.DAILY,
         Frequency.WEEK: rr.WEEKLY, Frequency.MONTH: rr.MONTHLY}
_UNIT = {Frequency.MINUTE: timedelta(minutes=1), Frequency.HOUR: timedelta(hours=1)}


@functools.lru_cache(maxsize=1024)
def _rule(r: Recurrence, start: datetime, k: int) -> rr.rrulebase:
    """The recurrence as an rrule from period ``k`` (a multiple of the interval) on.

    Every BYxxx part is given from the start time: dateutil would take a missing one from
    DTSTART, which is the start only for k = 0 (later, the period's beginning). Kept, as
    the timer asks for the same period every minute (an rrule without a cache is not
    changed by being read)."""
    by: dict[str, Any] = {"bysecond": 0 if r.has_pattern else start.second}
    if r.frequency is not Frequency.MINUTE:
        by["byminute"] = r.minutes or start.minute
    if r.frequency not in _UNIT:
        by["byhour"] = r.hours or start.hour
    if r.frequency is Frequency.WEEK or r.week_days:
        by["byweekday"] = r.week_days or start.weekday()
    elif r.month_days:
        by["bymonthday"] = r.month_days
    rule = functools.partial(rr.rrule, _FREQ[r.frequency], interval=r.interval, wkst=rr.MO,
                             dtstart=_period_start(r, start, k), cache=False)
    if r.frequency is Frequency.MONTH and "byweekday" not in by and "bymonthday" not in by:
        return _month_end_clamped(rule, start.day, by)
    return rule(**by)


# The months that can be shorter than day 29, 30 and 31 (2001: February has 28 days).
_SHORTER_MONTHS = {day: tuple(m for m in range(1, 13) if calendar.monthrange(2001, m)[1] < day)
                   for day in (29, 30, 31)}


def _month_end_clamped(rule: Callable[..., rr.rrule], day: int, by: dict[str, Any]
                       ) -> rr.rrulebase:
    """Month ends as in Logic Apps: monthly from the 31st is Jan 31, Feb 28, Mar 31, Apr 30.

    rrule's BYMONTHDAY=31 skips the months without a 31st (RFC 5545), so the recurrence is
    BYMONTHDAY=day together with BYMONTHDAY=-1 in the months that can be shorter than the
    day. A leap year's February 29 for day 29 comes from both rules; the set gives it
    once. (BYSETPOS=-1 over BYMONTHDAY=28..31 would keep one time a month, where hours and
    minutes may give the day several.)"""
    short = _SHORTER_MONTHS.get(day)
    if short is None:
        return rule(bymonthday=day, **by)
    rules = rr.rruleset(cache=False)
    rules.rrule(rule(bymonthday=day, **by))
    rules.rrule(rule(bymonth=short, bymonthday=-1, **by))
    return rules


def _period(r: Recurrence, start: datetime, at: datetime) -> int:
    """Which period after the start's holds ``at``: minutes and hours count from the start
    time, days, Monday-based weeks and months from the calendar's."""
    if r.frequency in _UNIT:
        return (at - start) // _UNIT[r.frequency]
    if r.frequency is Frequency.MONTH:
        return (at.year - start.year) * 12 + at.month - start.month
    days = (at.date() - start.date()).days
    return (days + start.weekday()) // 7 if r.frequency is Frequency.WEEK else days


def _period_start(r: Recurrence, start: datetime, k: int) -> datetime:
    """Where period ``k`` begins; period 0 at the start time, so nothing before it is due."""
    if k == 0:
        return start
    if r.frequency in _UNIT:
        return start + k * _UNIT[r.frequency]
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if r.frequency is Frequency.MONTH:
        first: datetime = midnight.replace(day=1) + relativedelta(months=k)
        return first
    week = r.frequency is Frequency.WEEK
    return midnight + timedelta(days=7 * k - start.weekday() if week else k)


@functools.lru_cache(maxsize=1024)
def _first_due(r: Recurrence, start: datetime) -> datetime | None:
    """The first due time, None for a pattern that never occurs (month_days [30, 31] every
    12 months from February). rrule finds that out only at year 9999, a tenth of a second,
    so it is asked once; a pattern that occurs at all recurs within a few periods."""
    found: datetime | None = _rule(r, start, 0).after(start, inc=True)
    return found


def _latest(r: Recurrence, start: datetime, bound: datetime) -> datetime:
    """The last due time at or before ``bound`` (which is at or after the first): from the
    period before the one holding it, then from 3, 7, 15 … periods back until one is found."""
    k = _period(r, start, bound)
    k -= k % r.interval
    back = 1
    while True:
        since = max(k - back * r.interval, 0)
        found: datetime | None = _rule(r, start, since).before(bound, inc=True)
        if found is not None or since == 0:
            assert found is not None  # the first due time is at or before bound
            return found
        back = back * 2 + 1
