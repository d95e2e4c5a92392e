"""Schedules: due times of recurrences and cron, catching up once, placeholders, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batchfx.core.recurrence import (
    Cron,
    Frequency,
    Recurrence,
    ScheduleError,
    due_times,
    fill_target,
    latest_due,
    next_due,
    parse_schedule,
)

NOW = datetime(2026, 3, 10, 12, 0, 30, 123456, tzinfo=UTC)
JOB = {"entry_script": "score.py", "source_directory": "code/x", "inputs": "data/in",
       "output": "results/out"}


def T(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def schedule(**fields: Any) -> Any:
    data = {"name": "nightly", "target": {"pipeline": "digits"}, **fields}
    return parse_schedule(data, now=NOW)


def every(frequency: str, start: str, **pattern: Any) -> dict[str, Any]:
    return {"recurrence": {"frequency": frequency, "start_time": start, **pattern}}


def problems_of(**fields: Any) -> list[str]:
    data = {"name": "nightly", "target": {"pipeline": "digits"},
            "recurrence": {"frequency": "Day"}, **fields}
    with pytest.raises(ScheduleError) as info:
        parse_schedule({k: v for k, v in data.items() if v is not None}, now=NOW)
    return info.value.problems


DUE_TIMES = [
    ("every 15 minutes", every("Minute", "2026-03-01T00:00", interval=15),
     "2026-03-01T00:50", ["00:00", "00:15", "00:30", "00:45"]),
    ("every 2 hours", every("Hour", "2026-03-01T01:30", interval=2),
     "2026-03-01T08:00", ["01:30", "03:30", "05:30", "07:30"]),
    ("daily at the start's time", every("Day", "2026-03-01T02:00"),
     "2026-03-03T23:00", ["03-01 02:00", "03-02 02:00", "03-03 02:00"]),
    ("every 2 days at hours and minutes", every("Day", "2026-03-01T10:00", interval=2,
                                               hours=[6, 18], minutes=[0, 30]),
     "2026-03-03T23:59", ["03-01 18:00", "03-01 18:30", "03-03 06:00", "03-03 06:30",
                          "03-03 18:00", "03-03 18:30"]),
    ("daily hours take the start's minute", every("Day", "2026-03-01T00:25", hours=[1, 2]),
     "2026-03-02T03:00", ["03-01 01:25", "03-01 02:25", "03-02 01:25", "03-02 02:25"]),
    ("weekly on the start's week day", every("Week", "2026-03-04T09:00"),
     "2026-03-20T00:00", ["03-04 09:00", "03-11 09:00", "03-18 09:00"]),
    ("every 2 weeks on Monday and Friday", every("Week", "2026-03-04T10:00", interval=2,
                                                week_days=["Monday", "friday"], hours=9),
     "2026-04-04T00:00", ["03-06 09:00", "03-16 09:00", "03-20 09:00", "03-30 09:00",
                          "04-03 09:00"]),
    ("monthly from the 31st: shorter months get their last day",
     every("Month", "2026-01-31T10:00"), "2026-05-01T00:00",
     ["01-31 10:00", "02-28 10:00", "03-31 10:00", "04-30 10:00"]),
    ("every 3 months", every("Month", "2026-01-15T00:00", interval=3), "2026-12-31T00:00",
     ["01-15 00:00", "04-15 00:00", "07-15 00:00", "10-15 00:00"]),
    ("monthly on Mondays", every("Month", "2026-03-01T00:00", week_days="Monday", hours=8,
                                 minutes=0), "2026-03-31T00:00",
     ["03-02 08:00", "03-09 08:00", "03-16 08:00", "03-23 08:00", "03-30 08:00"]),
    ("monthly on days 1 and 31", every("Month", "2026-01-05T00:00", month_days=[1, 31],
                                       hours=0, minutes=0), "2026-04-01T12:00",
     ["01-31 00:00", "02-01 00:00", "03-01 00:00", "03-31 00:00", "04-01 00:00"]),
    ("cron on weekdays", {"cron": {"expression": "0 2 * * 1-5",
                                   "start_time": "2026-03-06T00:00"}},
     "2026-03-10T12:00", ["03-06 02:00", "03-09 02:00", "03-10 02:00"]),
    ("cron every 20 minutes", {"cron": {"expression": "*/20 * * * *",
                                        "start_time": "2026-03-01T00:10"}},
     "2026-03-01T01:00", ["00:20", "00:40", "01:00"]),
]


def _at(short: str, year_month_day: str = "2026-03-01") -> datetime:
    if " " in short:
        day, clock = short.split()
        return T(f"2026-{day}T{clock}")
    return T(f"{year_month_day}T{short}")


@pytest.mark.parametrize(("case", "fields", "until", "expected"), DUE_TIMES,
                         ids=[c[0] for c in DUE_TIMES])
def test_due_times(case: str, fields: dict[str, Any], until: str, expected: list[str]) -> None:
    found = list(due_times(schedule(**fields), None, T(until)))
    assert found == [_at(e) for e in expected]


@pytest.mark.parametrize(("case", "fields", "until", "expected"), DUE_TIMES,
                         ids=[c[0] for c in DUE_TIMES])
def test_latest_due_is_the_last_due_time_up_to_now(case: str, fields: dict[str, Any],
                                                   until: str, expected: list[str]) -> None:
    s = schedule(**fields)
    start = s.start_time
    for minutes in range(0, int((T(until) - start).total_seconds() // 60) + 1, 7):
        now = start + timedelta(minutes=minutes, seconds=13)
        times = list(due_times(s, None, now))
        assert latest_due(s, None, now) == (times[-1] if times else None), now


def test_latest_due_catches_up_missed_windows_once() -> None:
    s = schedule(**every("Day", "2026-03-01T02:00"))
    # Fired on the 3rd; the timer was down until the 7th at noon: one run, for the 7th.
    assert latest_due(s, T("2026-03-03T02:00"), T("2026-03-07T12:00")) == T("2026-03-07T02:00")


def test_latest_due_is_none_when_the_latest_was_fired() -> None:
    s = schedule(**every("Day", "2026-03-01T02:00"))
    assert latest_due(s, T("2026-03-07T02:00"), T("2026-03-07T23:59")) is None


def test_latest_due_includes_a_due_time_equal_to_now() -> None:
    s = schedule(**every("Hour", "2026-03-01T00:00"))
    assert latest_due(s, T("2026-03-01T04:00"), T("2026-03-01T05:00")) == T("2026-03-01T05:00")


@pytest.mark.parametrize("fields", [every("Minute", "2026-04-01T00:00"),
                                    every("Day", "2026-04-01T00:00", hours=[0, 12]),
                                    {"cron": {"expression": "* * * * *",
                                              "start_time": "2026-04-01T00:00"}}],
                         ids=["recurrence", "pattern", "cron"])
def test_nothing_is_due_before_the_start_time(fields: dict[str, Any]) -> None:
    assert latest_due(schedule(**fields), None, T("2026-03-31T23:59")) is None


def test_nothing_is_due_after_the_end_time() -> None:
    s = schedule(recurrence={"frequency": "Day", "start_time": "2026-03-01T02:00",
                             "end_time": "2026-03-03T00:00"})
    assert latest_due(s, None, T("2026-03-09T00:00")) == T("2026-03-02T02:00")
    assert next_due(s, T("2026-03-02T02:00")) is None


def test_next_due_is_the_first_due_time_after() -> None:
    s = schedule(cron="30 4 * * *")
    assert next_due(s, T("2026-03-10T04:30")) == T("2026-03-11T04:30")


NEXT_MINUTE = datetime(2026, 3, 10, 12, 1, tzinfo=UTC)
THIS_MINUTE = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_default_start_time_is_this_whole_minute() -> None:
    # The timer ticks on the minute: a start at second 30 made every run 30 s late.
    assert schedule(cron="0 2 * * *").start_time == THIS_MINUTE


def test_a_default_start_time_is_itself_due() -> None:
    s = schedule(recurrence={"frequency": "Day"})
    assert latest_due(s, None, NOW) == THIS_MINUTE
    assert next_due(s, THIS_MINUTE) == THIS_MINUTE + timedelta(days=1)


def test_a_start_time_with_seconds_is_rounded_up_and_every_due_time_is_on_the_minute(
        ) -> None:
    s = schedule(recurrence={"frequency": "Minute", "interval": 7,
                             "start_time": "2026-03-10T12:00:05Z"})
    assert s.start_time == NEXT_MINUTE
    due = list(due_times(s, None, NEXT_MINUTE + timedelta(hours=1)))
    assert len(due) == 9 and all(d.second == 0 and d.microsecond == 0 for d in due)
    on_the_minute = schedule(**every("Day", "2026-03-10T12:00:00Z"))
    assert on_the_minute.start_time == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_start_time_without_offset_is_utc_and_with_one_is_converted() -> None:
    naive = schedule(**every("Day", "2026-03-01T02:00"))
    offset = schedule(**every("Day", "2026-03-01T03:00+01:00"))
    assert naive.start_time == offset.start_time == T("2026-03-01T02:00")


def test_parsed_values() -> None:
    s = schedule(recurrence={"frequency": "week", "interval": 2, "week_days": "Sunday",
                             "hours": 5, "time_zone": "UTC"})
    assert s.trigger == Recurrence(Frequency.WEEK, 2, hours=(5,), week_days=(6,))
    assert schedule(cron=" 0  2 * * * ").trigger == Cron("0 2 * * *")


def test_to_record_parses_back_to_the_same_schedule() -> None:
    s = schedule(**every("Month", "2026-01-31T10:00", week_days=["Monday"], hours=[1, 2]),
                 parameters={"day": "{date:%d}"}, description="d", enabled=False)
    assert parse_schedule(s.to_record(), now=NOW + timedelta(days=9)) == s


def test_an_inline_job_is_named_after_the_schedule_by_default() -> None:
    s = schedule(target={"job": JOB}, cron="0 2 * * *")
    assert s.target["job"]["name"] == "nightly"


# --- placeholders ----------------------------------------------------------------------

FILLS = [
    ("{date}", "2026-03-01"),
    ("data/{date-1d:%Y/%m/%d}", "data/2026/02/28"),
    ("{date+2h:%H}", "02"),
    ("{date-1w:%d}", "22"),
    ("{date-90m:%H:%M}", "23:00"),
    ("{date:%Y}-{date:%m}", "2026-03"),
    ("{x} {dates} {date_of} {}", "{x} {dates} {date_of} {}"),
]


@pytest.mark.parametrize(("value", "filled"), FILLS)
def test_placeholders_are_filled_from_the_due_time(value: str, filled: str) -> None:
    s = schedule(cron="30 0 * * *", parameters={"p": value})
    _, parameters = fill_target(s, T("2026-03-01T00:30"))
    assert parameters == {"p": filled}


def test_placeholders_in_an_inline_job_are_filled_everywhere() -> None:
    job = {**JOB, "inputs": {"path": "data/{date-1d:%Y/%m/%d}"},
           "arguments": ["--day", "{date:%Y%m%d}"]}
    s = schedule(target={"job": job}, cron="0 2 * * *")
    target, _ = fill_target(s, T("2026-01-01T02:00"))
    assert target["job"]["inputs"] == {"path": "data/2025/12/31"}
    assert target["job"]["arguments"] == ["--day", "20260101"]


def test_target_parameters_are_filled_too() -> None:
    s = schedule(target={"deployment": "digits", "inputs": "data/{date-1d:%Y%m%d}",
                         "parameters": {"run": "{date}"}}, cron="0 2 * * *")
    target, _ = fill_target(s, T("2026-03-01T02:00"))
    assert target == {"deployment": "digits", "inputs": "data/20260228",
                      "parameters": {"run": "2026-03-01"}}


# --- refusals: each names the field, the value and the fix -----------------------------

REFUSALS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("unknown field", {"schedul": 1}, ["schedul: unknown field", "recurrence"]),
    ("time zone at the top", {"time_zone": "UTC"}, ["time_zone: goes inside recurrence"]),
    ("missing name", {"name": None}, ["name: missing", "a-z"]),
    ("bad name", {"name": "Nightly_1"}, ["name: got 'Nightly_1'", "e.g. nightly-digits"]),
    ("description", {"description": 3}, ["description: got 3", "text"]),
    ("enabled", {"enabled": "yes"}, ["enabled: got 'yes'", "true or false"]),
    ("missing target", {"target": None}, ["target: missing", "{pipeline: NAME}"]),
    ("target not a mapping", {"target": "digits"}, ["target: got 'digits'"]),
    ("two target kinds", {"target": {"pipeline": "a", "job": {}}},
     ["target: pipeline and job both given", "exactly one"]),
    ("no target kind", {"target": {"name": "a"}}, ["target: got {'name': 'a'}", "exactly one"]),
    ("unknown job target key", {"target": {"job": JOB, "inputs": "x/y"}},
     ["target.inputs: unknown field", "allowed here: job"]),
    ("pipeline name", {"target": {"pipeline": ""}}, ["target.pipeline: got ''", "name"]),
    ("job not a mapping", {"target": {"job": "x"}}, ["target.job: got 'x'", "job spec"]),
    ("parameters", {"parameters": "day=1"}, ["parameters: got 'day=1'", "mapping"]),
    ("parameters with a job target", {"target": {"job": JOB}, "parameters": {"a": 1}},
     ["parameters: a job target takes no parameters", "target.job"]),
    ("job spec problem", {"target": {"job": {**JOB, "mini_batch_size": 0}}},
     ["target.job.mini_batch_size"]),
    ("neither recurrence nor cron", {"recurrence": None},
     ["recurrence, cron: neither given", "cron: '0 2 * * *'"]),
    ("both recurrence and cron", {"cron": "0 2 * * *"}, ["recurrence, cron: both given"]),
    ("recurrence not a mapping", {"recurrence": "daily"},
     ["recurrence: got 'daily'", "frequency: Day"]),
    ("unknown recurrence key", {"recurrence": {"frequency": "Day", "hour": 2}},
     ["recurrence.hour: unknown field", "hours"]),
    ("missing frequency", {"recurrence": {"interval": 1}},
     ["recurrence.frequency: missing", "Minute, Hour, Day, Week, Month"]),
    ("bad frequency", {"recurrence": {"frequency": "Year"}},
     ["recurrence.frequency: got 'Year'", "Month"]),
    ("interval 0", {"recurrence": {"frequency": "Day", "interval": 0}},
     ["recurrence.interval: got 0", "≥ 1"]),
    ("interval as text", {"recurrence": {"frequency": "Day", "interval": "1"}},
     ["recurrence.interval: got '1'"]),
    ("hours out of range", {"recurrence": {"frequency": "Day", "hours": [24]}},
     ["recurrence.hours: got [24]", "0 to 23"]),
    ("minutes out of range", {"recurrence": {"frequency": "Day", "minutes": [60]}},
     ["recurrence.minutes: got [60]", "0 to 59"]),
    ("bad week day", {"recurrence": {"frequency": "Week", "week_days": ["Funday"]}},
     ["recurrence.week_days: got ['Funday']", "Monday"]),
    ("month day 0", {"recurrence": {"frequency": "Month", "month_days": [0]}},
     ["recurrence.month_days: got [0]", "1 to 31"]),
    ("pattern with minutes frequency", {"recurrence": {"frequency": "Minute", "hours": [1]}},
     ["recurrence.hours: not allowed with frequency Minute", "Day or Week or Month", "cron"]),
    ("week days with daily", {"recurrence": {"frequency": "Day", "week_days": ["Monday"]}},
     ["recurrence.week_days: not allowed with frequency Day", "Week or Month"]),
    ("month days with weekly", {"recurrence": {"frequency": "Week", "month_days": [1]}},
     ["recurrence.month_days: not allowed with frequency Week", "Month"]),
    ("week and month days", {"recurrence": {"frequency": "Month", "week_days": "Monday",
                                            "month_days": 1}},
     ["recurrence.week_days, recurrence.month_days: both given", "keep one"]),
    ("start time", {"recurrence": {"frequency": "Day", "start_time": "tomorrow"}},
     ["recurrence.start_time: got 'tomorrow'", "2026-01-31T02:00:00Z"]),
    ("end before start", {"recurrence": {"frequency": "Day", "start_time": "2026-03-02",
                                         "end_time": "2026-03-01"}},
     ["end_time: got 2026-03-01T00:00:00+00:00", "after start_time"]),
    ("time zone", {"recurrence": {"frequency": "Day", "time_zone": "Pacific Standard Time"}},
     ["recurrence.time_zone: got 'Pacific Standard Time'", "only UTC", "17:00 UTC"]),
    ("cron time zone", {"recurrence": None, "cron": {"expression": "0 2 * * *",
                                                     "time_zone": "Europe/Paris"}},
     ["cron.time_zone: got 'Europe/Paris'", "only UTC"]),
    ("cron not text", {"recurrence": None, "cron": 5}, ["cron: got 5", "'0 2 * * *'"]),
    ("cron with seconds", {"recurrence": None, "cron": "0 0 2 * * *"},
     ["cron: got '0 0 2 * * *' (6 fields)", "5 fields: minute hour"]),
    ("cron out of range", {"recurrence": None, "cron": "61 2 * * *"},
     ["cron: got '61 2 * * *'", "minute 0-59"]),
    ("cron unknown key", {"recurrence": None, "cron": {"expression": "0 2 * * *", "tz": "x"}},
     ["cron.tz: unknown field", "expression, start_time"]),
    ("cron missing expression", {"recurrence": None, "cron": {"start_time": "2026-01-01"}},
     ["cron.expression: missing", "'0 2 * * *'"]),
    ("placeholder offset unit", {"parameters": {"day": "{date-1y:%Y}"}},
     ["parameters.day: '{date-1y:%Y}' has '{date-1y:%Y}'", "offset unit 'y'", "d (days)"]),
    ("placeholder format", {"parameters": {"day": "x/{date:%Q}"}},
     ["parameters.day: 'x/{date:%Q}'", "%Q is not a known directive", "%Y %m %d"]),
    ("placeholder empty format", {"parameters": {"day": "{date:}"}},
     ["parameters.day", "the format is empty"]),
    ("placeholder syntax", {"parameters": {"day": "{date-1:%d}"}},
     ["parameters.day: '{date-1:%d}'", "{date-1d:%Y/%m/%d}"]),
    ("placeholder in the target", {"target": {"job": {**JOB, "inputs": "d/{date-x}"}}},
     ["target.job.inputs: 'd/{date-x}'"]),
]


@pytest.mark.parametrize(("case", "changes", "parts"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal_names_field_value_and_fix(case: str, changes: dict[str, Any],
                                           parts: list[str]) -> None:
    problems = problems_of(**changes)
    assert any(all(p in problem for p in parts) for problem in problems), problems


def test_a_non_mapping_is_refused() -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(["daily"], now=NOW)
    assert info.value.problems == ["schedule: got list ['daily'] — expected a mapping with "
                                   "name, target and recurrence or cron"]


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(name="X", recurrence={"frequency": "Day", "interval": 0},
                           enabled="no")
    assert len(problems) == 3
