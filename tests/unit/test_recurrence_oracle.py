"""Recurrence due times against a brute-force oracle: property test over random schedules.

The oracle is the recurrence's definition read literally — every calendar day (every minute,
for Minute and Hour) in a window, kept when its period is a multiple of the interval from
the start's and it is on the pattern — with none of batchfx.core.recurrence's arithmetic
(rrule, periods, the month-end rule set). Hypothesis draws the recurrence (month-end start
days, Feb-only intervals and month days 29-31 favoured), a probe time around the start and
an end time; next_due, latest_due and due_times must agree with the oracle.
RECURRENCE_EXAMPLES sets how many schedules of each frequency are drawn (default 100).
"""

from __future__ import annotations

import calendar
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchfx.core.recurrence import (
    Frequency,
    Recurrence,
    Schedule,
    due_times,
    latest_due,
    next_due,
    parse_schedule,
)

EXAMPLES = int(os.environ.get("RECURRENCE_EXAMPLES", "100"))
NOW = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


# --- the oracle ------------------------------------------------------------------------

def _months(start: date, day: date) -> int:
    return (day.year - start.year) * 12 + day.month - start.month


def _on_day(r: Recurrence, start: datetime, day: date) -> bool:
    """Whether ``day`` is in an active period and on the recurrence's days."""
    if r.frequency is Frequency.DAY:
        return (day - start.date()).days % r.interval == 0
    if r.frequency is Frequency.WEEK:
        monday = start.date() - timedelta(days=start.weekday())
        weeks = (day - timedelta(days=day.weekday()) - monday).days // 7
        return weeks % r.interval == 0 and day.weekday() in (r.week_days or (start.weekday(),))
    if r.frequency is Frequency.MONTH:
        if _months(start.date(), day) % r.interval:
            return False
        if r.week_days:
            return day.weekday() in r.week_days
        if r.month_days:
            return day.day in r.month_days
        # Logic Apps' month end: the start's day, or the last day of a shorter month.
        return day.day == min(start.day, calendar.monthrange(day.year, day.month)[1])
    return True


def _times_of(r: Recurrence, start: datetime, day: date) -> Iterator[datetime]:
    if r.frequency in (Frequency.MINUTE, Frequency.HOUR):
        unit = MINUTE if r.frequency is Frequency.MINUTE else timedelta(hours=1)
        midnight = datetime.combine(day, time(), tzinfo=UTC)
        for minute in range(24 * 60):
            t = midnight + minute * MINUTE
            if (t - start) % (r.interval * unit) == timedelta(0):
                yield t
        return
    for h in sorted(r.hours or (start.hour,)):
        for m in sorted(r.minutes or (start.minute,)):
            yield datetime.combine(day, time(h, m), tzinfo=UTC)


def oracle(s: Schedule, low: datetime, high: datetime) -> list[datetime]:
    """Every due time in [low, high], by looking at each day."""
    assert isinstance(s.trigger, Recurrence)
    low = max(low, s.start_time)
    if s.end_time is not None:
        high = min(high, s.end_time)
    found, day = [], low.date()
    while day <= high.date():
        if _on_day(s.trigger, s.start_time, day):
            found += [t for t in _times_of(s.trigger, s.start_time, day) if low <= t <= high]
        day += timedelta(days=1)
    return found


def horizon(r: Recurrence) -> timedelta:
    """How far the oracle looks: past any gap between due times a drawn schedule can have."""
    if r.frequency is Frequency.MINUTE:
        return timedelta(days=1)
    if r.frequency is Frequency.HOUR:
        return timedelta(days=3)
    if r.frequency is Frequency.MONTH:
        # February alone (every 12, 24 or 48 months) with days 29-31: Feb 29 is 8 years
        # away across 2100; otherwise a day 29-31 is at most 3 periods away.
        months = 8 * 12 + 2 * r.interval if r.interval % 12 == 0 else 4 * r.interval + 1
        return timedelta(days=31 * months)
    weeks = 7 if r.frequency is Frequency.WEEK else 1
    return timedelta(days=weeks * (2 * r.interval + 1))


# --- drawing schedules -----------------------------------------------------------------

def _subset(low: int, high: int, *, favour: list[int] | None = None) -> Any:
    item = st.integers(low, high)
    if favour:
        item = st.one_of(st.sampled_from(favour), item)
    return st.lists(item, min_size=1, max_size=4, unique=True)


@st.composite
def schedules(draw: Any, frequency: str) -> Schedule:
    interval = draw(st.one_of(st.integers(1, 5), st.integers(1, 40),
                              st.sampled_from([12, 24, 48])
                              if frequency == "Month" else st.integers(1, 3)))
    moment = draw(st.datetimes(datetime(2022, 1, 1), datetime(2030, 12, 31)))
    if draw(st.booleans()):  # month ends: 28-31 where the month has them
        last = calendar.monthrange(moment.year, moment.month)[1]
        moment = moment.replace(day=draw(st.integers(min(28, last), last)))
    start = moment.replace(second=0, microsecond=0, tzinfo=UTC)
    recurrence: dict[str, Any] = {"frequency": frequency, "interval": interval,
                                  "start_time": start.isoformat()}
    if frequency in ("Day", "Week", "Month"):
        if draw(st.booleans()):
            recurrence["hours"] = draw(_subset(0, 23))
        if draw(st.booleans()):
            recurrence["minutes"] = draw(_subset(0, 59))
        days = draw(st.sampled_from(["none", "week", "month"] if frequency == "Month"
                                    else ["none", "week"] if frequency == "Week" else ["none"]))
        if days == "week":
            recurrence["week_days"] = [calendar.day_name[d] for d in draw(_subset(0, 6))]
        elif days == "month":
            recurrence["month_days"] = draw(_subset(1, 31, favour=[29, 30, 31]))
    if draw(st.integers(0, 3)) == 0:
        recurrence["end_time"] = (start + draw(st.integers(1, 400 * 24 * 60)) * MINUTE
                                  ).isoformat()
    return parse_schedule({"name": "oracle", "target": {"pipeline": "p"},
                           "recurrence": recurrence}, now=NOW)


def _probe(draw: Any, s: Schedule) -> datetime:
    """A time around the start: before it, on a due time or between two, with seconds."""
    assert isinstance(s.trigger, Recurrence)
    span = int(horizon(s.trigger) / MINUTE)
    at = s.start_time + draw(st.integers(-span // 4, 3 * span)) * MINUTE
    return at + timedelta(seconds=draw(st.sampled_from([0, 0, 1, 59])),
                          microseconds=draw(st.sampled_from([0, 0, 1, 999_999])))


FREQUENCIES = pytest.mark.parametrize("frequency", [f.value for f in Frequency])
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@FREQUENCIES
@SETTINGS
@given(st.data())
def test_next_due_is_the_oracles_first_due_time_after(frequency: str, data: st.DataObject) -> None:
    s = data.draw(schedules(frequency))
    assert isinstance(s.trigger, Recurrence)
    after = None if data.draw(st.integers(0, 5)) == 0 else _probe(data.draw, s)
    low = s.start_time if after is None else after
    reach = low + horizon(s.trigger)
    expected = [t for t in oracle(s, low, reach) if after is None or t > after]
    found = next_due(s, after)
    if expected:
        assert found == expected[0]
    else:  # none within the horizon: none at all, or (only by an end time) none left
        assert found is None or found > reach


@FREQUENCIES
@SETTINGS
@given(st.data())
def test_latest_due_is_the_oracles_last_due_time_up_to_now(frequency: str,
                                                           data: st.DataObject) -> None:
    s = data.draw(schedules(frequency))
    assert isinstance(s.trigger, Recurrence)
    now = _probe(data.draw, s)
    after = None if data.draw(st.booleans()) else now - data.draw(
        st.integers(0, int(2 * horizon(s.trigger) / MINUTE))) * MINUTE
    low = max(s.start_time, now - horizon(s.trigger))
    if after is not None:
        low = max(low, after)
    expected = [t for t in oracle(s, low, now) if after is None or t > after]
    found = latest_due(s, after, now)
    if expected:
        assert found == expected[-1]
    elif low == s.start_time or (after is not None and low == after):
        assert found is None
    else:
        assert found is None or found < low


@FREQUENCIES
@SETTINGS
@given(st.data())
def test_due_times_are_the_oracles_in_a_window(frequency: str, data: st.DataObject) -> None:
    s = data.draw(schedules(frequency))
    assert isinstance(s.trigger, Recurrence)
    after = None if data.draw(st.booleans()) else _probe(data.draw, s)
    low = s.start_time if after is None else after
    until = low + data.draw(st.integers(0, int(horizon(s.trigger) / MINUTE))) * MINUTE
    expected = [t for t in oracle(s, low, until) if after is None or t > after]
    assert list(due_times(s, after, until)) == expected
