"""Checking a schedule mapping field by field, and filling ``{date}`` placeholders (pure)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from batchfx.core.errors import ScheduleError

__all__ = ["ScheduleError", "ScheduleParts", "check_placeholders", "fill_placeholders",
           "parse_parts"]

NAME_RE = re.compile(r"^(?=.{3,32}$)[a-z]([-a-z0-9]*[a-z0-9])?$")
FREQUENCIES = ("Minute", "Hour", "Day", "Week", "Month")
TOP_FIELDS = ["name", "description", "target", "recurrence", "cron", "parameters", "enabled"]
RECURRENCE_FIELDS = ["frequency", "interval", "start_time", "end_time", "time_zone", "hours",
                     "minutes", "week_days", "month_days"]
CRON_FIELDS = ["expression", "start_time", "end_time", "time_zone"]
TARGET_KINDS = ("pipeline", "deployment", "job")
# Which pattern fields each frequency takes (Azure ML: Day takes hours and minutes, Week
# and Month week days too; month_days is Month's alone).
PATTERNS = {"Minute": (), "Hour": (), "Day": ("hours", "minutes"),
            "Week": ("hours", "minutes", "week_days"),
            "Month": ("hours", "minutes", "week_days", "month_days")}
_RANGES = {"hours": (0, 23), "minutes": (0, 59), "month_days": (1, 31)}
_DAY_NAMES = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_CRON_EXAMPLE = "e.g. '0 2 * * *' for 02:00 UTC every day"


@dataclass
class ScheduleParts:
    """The checked fields of a schedule, before they are assembled."""

    name: str = ""
    description: str = ""
    target: dict[str, Any] = field(default_factory=dict)
    recurrence: dict[str, Any] | None = None
    cron: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown(path: str, allowed: list[str]) -> str:
    return f"{path}: unknown field — allowed here: {', '.join(allowed)}"


def parse_parts(data: object) -> tuple[ScheduleParts, list[str]]:
    """Check every field of a schedule mapping; returns the parts and one message per problem."""
    parts, problems = ScheduleParts(), []
    if not isinstance(data, Mapping):
        expected = "expected a mapping with name, target and recurrence or cron"
        return parts, [f"schedule: got {type(data).__name__} {_short(data)} — {expected}"]
    for key in data:
        if key == "time_zone":
            problems.append("time_zone: goes inside recurrence or cron, and only UTC is "
                            "supported — remove it, or move it there as time_zone: UTC")
        elif key not in TOP_FIELDS:
            problems.append(_unknown(str(key), TOP_FIELDS))
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        rule = "3 to 32 of a-z, 0-9 and '-', starting with a letter, e.g. nightly-digits"
        problems.append(f"name: {'missing' if name is None else f'got {_short(name)}'} — "
                        f"expected {rule}")
    else:
        parts.name = name
    description = data.get("description", "")
    if isinstance(description, str):
        parts.description = description
    else:
        problems.append(f"description: got {_short(description)} — expected text")
    enabled = data.get("enabled", True)
    if isinstance(enabled, bool):
        parts.enabled = enabled
    else:
        problems.append(f"enabled: got {_short(enabled)} — expected true or false")
    problems += _target(data.get("target"), parts)
    problems += _parameters(data.get("parameters", {}), parts)
    has_recurrence, has_cron = data.get("recurrence") is not None, data.get("cron") is not None
    if has_recurrence == has_cron:
        how = "both given — keep one" if has_cron else "neither given — add one"
        problems.append(f"recurrence, cron: {how}; a schedule has exactly one, e.g. "
                        "recurrence: {frequency: Day, interval: 1} or cron: '0 2 * * *'")
    elif has_recurrence:
        problems += _recurrence(data["recurrence"], parts)
    else:
        problems += _cron(data["cron"], parts)
    return parts, problems


def _target(target: object, parts: ScheduleParts) -> list[str]:
    example = "{pipeline: NAME}, {deployment: NAME, inputs: container/prefix} or {job: {...}}"
    if not isinstance(target, Mapping):
        got = "missing" if target is None else f"got {_short(target)}"
        return [f"target: {got} — expected {example}"]
    kinds = [k for k in TARGET_KINDS if k in target]
    if len(kinds) != 1:
        got = f"{' and '.join(kinds)} both given" if kinds else f"got {_short(dict(target))}"
        return [f"target: {got} — expected exactly one of {example}"]
    kind, problems = kinds[0], []
    value = target[kind]
    if kind == "job":
        # A pipeline or deployment target's other fields are checked by job_spec_for
        # (batchfx.services.invocations) when the schedule is created.
        problems += [_unknown(f"target.{k}", ["job"]) for k in target if k != "job"]
        if not isinstance(value, Mapping):
            problems.append(f"target.job: got {_short(value)} — expected a job spec mapping "
                            "(entry_script, source_directory, inputs, output, ...)")
    elif not isinstance(value, str) or not value.strip():
        problems.append(f"target.{kind}: got {_short(value)} — expected the {kind}'s name")
    if not problems:
        parts.target = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in target.items()}
    return problems


def _is_parameter_map(value: object) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)


def _parameters(value: object, parts: ScheduleParts) -> list[str]:
    if not _is_parameter_map(value):
        return [f"parameters: got {_short(value)} — expected a mapping of parameter name to "
                "value, e.g. {input_day: '{date-1d:%Y/%m/%d}'}"]
    assert isinstance(value, Mapping)
    if value and "job" in parts.target:
        return ["parameters: a job target takes no parameters — write the values "
                "(placeholders allowed) into target.job itself"]
    parts.parameters = dict(value)
    return []


def _time(path: str, value: object) -> tuple[datetime | None, list[str]]:
    parsed: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        return None, [f"{path}: got {_short(value)} — expected an ISO 8601 time in UTC, "
                      "e.g. 2026-01-31T02:00:00Z"]
    # A time without an offset is UTC, the only time zone schedules use.
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed.replace(microsecond=0), []


def _times(path: str, data: Mapping[str, Any], parts: ScheduleParts) -> list[str]:
    problems: list[str] = []
    zone = data.get("time_zone", "UTC")
    if not isinstance(zone, str) or zone.strip().upper() not in ("UTC", "Z", "ETC/UTC"):
        problems.append(f"{path}.time_zone: got {_short(zone)} — only UTC is supported; give "
                        "the times in UTC (09:00 Pacific Standard Time is 17:00 UTC) and "
                        "remove time_zone or set it to UTC")
    for key in ("start_time", "end_time"):
        if data.get(key) is not None:
            value, found = _time(f"{path}.{key}", data[key])
            problems += found
            setattr(parts, key, value)
    return problems


def _int_list(path: str, value: object, low: int, high: int) -> tuple[tuple[int, ...], str]:
    items = value if isinstance(value, list) else [value]
    if not items or any(isinstance(i, bool) or not isinstance(i, int) or not low <= i <= high
                        for i in items):
        return (), f"{path}: got {_short(value)} — expected a whole number or a list of them " \
                   f"from {low} to {high}"
    return tuple(sorted(set(items))), ""


def _week_days(path: str, value: object) -> tuple[tuple[int, ...], str]:
    items = value if isinstance(value, list) else [value]
    days = [_DAY_NAMES.get(i.strip().lower()) if isinstance(i, str) else None for i in items]
    if not items or None in days:
        return (), f"{path}: got {_short(value)} — expected a day name or a list of them: " \
                   f"{', '.join(calendar.day_name)}"
    return tuple(sorted({d for d in days if d is not None})), ""


def _recurrence(data: object, parts: ScheduleParts) -> list[str]:
    example = "{frequency: Day, interval: 1, hours: [2], minutes: [0]}"
    if not isinstance(data, Mapping):
        return [f"recurrence: got {_short(data)} — expected a mapping like {example}"]
    problems = [_unknown(f"recurrence.{k}", RECURRENCE_FIELDS) for k in data
                if k not in RECURRENCE_FIELDS]
    problems += _times("recurrence", data, parts)
    raw = data.get("frequency")
    frequency = next((f for f in FREQUENCIES if isinstance(raw, str) and raw.lower() == f.lower()),
                     None)
    if frequency is None:
        got = "missing" if raw is None else f"got {_short(raw)}"
        problems.append(f"recurrence.frequency: {got} — expected one of {', '.join(FREQUENCIES)}")
    interval = data.get("interval", 1)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        problems.append(f"recurrence.interval: got {_short(interval)} — expected a whole number "
                        "≥ 1 (how many frequency units between runs)")
    values: dict[str, Any] = {"frequency": frequency, "interval": interval}
    for key in ("hours", "minutes", "week_days", "month_days"):
        if data.get(key) is None:
            continue
        if frequency is not None and key not in PATTERNS[frequency]:
            allowed = [f for f in FREQUENCIES if key in PATTERNS[f]]
            problems.append(f"recurrence.{key}: not allowed with frequency {frequency} — it "
                            f"needs frequency {' or '.join(allowed)}; use cron for other "
                            "patterns")
            continue
        path = f"recurrence.{key}"
        found, problem = (_week_days(path, data[key]) if key == "week_days"
                          else _int_list(path, data[key], *_RANGES[key]))
        if problem:
            problems.append(problem)
        values[key] = found
    if values.get("week_days") and values.get("month_days"):
        problems.append("recurrence.week_days, recurrence.month_days: both given — a monthly "
                        "recurrence runs on week days or on days of the month; keep one")
    parts.recurrence = values
    return problems


def _cron(data: object, parts: ScheduleParts) -> list[str]:
    problems: list[str] = []
    if isinstance(data, Mapping):
        problems += [_unknown(f"cron.{k}", CRON_FIELDS) for k in data if k not in CRON_FIELDS]
        problems += _times("cron", data, parts)
        expression, path = data.get("expression"), "cron.expression"
    else:
        expression, path = data, "cron"
    if not isinstance(expression, str):
        got = "missing" if expression is None else f"got {_short(expression)}"
        return [*problems, f"{path}: {got} — expected a cron expression, {_CRON_EXAMPLE}"]
    fields = expression.split()
    if len(fields) != 5:
        return [*problems, f"{path}: got {_short(expression)} ({len(fields)} fields) — expected "
                f"5 fields: minute hour day-of-month month day-of-week, in UTC, {_CRON_EXAMPLE}"]
    if not croniter.is_valid(expression):
        return [*problems, f"{path}: got {_short(expression)} — not a valid cron expression "
                "(minute 0-59, hour 0-23, day 1-31, month 1-12, day of week 0-6 or MON-SUN), "
                f"{_CRON_EXAMPLE}"]
    parts.cron = " ".join(fields)
    return problems


# --- placeholders ----------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{date(?=[}:+-])([^{}]*)\}")
_DATE_SPEC = re.compile(r"(?:([+-])(\d{1,4})([a-z]))?(?::(.*))?", re.S)
_DIRECTIVE = re.compile(r"%(.?)", re.S)
# Directives that mean the same on every platform (strftime passes others to the C library).
_KNOWN = set("aAwdbBmyYHIpMSfzZjUWcxXGuV%")
_OFFSETS = {"d": "days", "h": "hours", "m": "minutes", "w": "weeks"}
_SAMPLE = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)


def _fill_text(text: str, due: datetime, path: str) -> str:
    def replace(match: re.Match[str]) -> str:
        what = f"{path}: {_short(text)} has {match.group(0)!r}"
        parsed = _DATE_SPEC.fullmatch(match.group(1))
        if parsed is None:
            raise ScheduleError([f"{what} — expected {{date}}, {{date:FORMAT}} or an offset "
                                 "such as {date-1d:%Y/%m/%d} or {date+2h:%H}"])
        sign, amount, unit, fmt = parsed.groups()
        if unit is not None and unit not in _OFFSETS:
            raise ScheduleError([f"{what} — offset unit {unit!r} is not known; use d (days), "
                                 "h (hours), m (minutes) or w (weeks)"])
        if fmt is not None:
            bad = [f"%{d}" for d in _DIRECTIVE.findall(fmt) if d not in _KNOWN]
            if not fmt or bad:
                problem = f"{', '.join(bad)} is not a known directive" if bad else "empty"
                raise ScheduleError([f"{what} — the format is {problem}; use strftime "
                                     "directives such as %Y %m %d %H %M, e.g. "
                                     "{date:%Y/%m/%d}"])
        when = due
        if unit is not None:
            delta = timedelta(**{_OFFSETS[unit]: int(amount)})
            try:
                when = due + delta if sign == "+" else due - delta
            except OverflowError:
                raise ScheduleError([f"{what} — the offset leaves the calendar"]) from None
        return when.strftime("%Y-%m-%d" if fmt is None else fmt)

    return _PLACEHOLDER.sub(replace, text)


def fill_placeholders(value: Any, due: datetime, path: str) -> Any:
    """``value`` with ``{date...}`` placeholders in its strings filled from ``due``."""
    if isinstance(value, str):
        return _fill_text(value, due, path)
    if isinstance(value, Mapping):
        return {k: fill_placeholders(v, due, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(v, due, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def check_placeholders(value: Any, path: str) -> list[str]:
    """One message per string of ``value`` whose placeholders cannot be filled."""
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in check_placeholders(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in check_placeholders(v, f"{path}[{i}]")]
    try:
        fill_placeholders(value, _SAMPLE, path)
    except ScheduleError as exc:
        return exc.problems
    return []
