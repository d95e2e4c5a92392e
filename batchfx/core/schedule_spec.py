"""Checking a schedule mapping field by field, and filling ``{date}`` placeholders (pure).

The mapping is validated by pydantic models, as the job spec is (batchfx.core.spec): each
field's rule raises its message (a :class:`~batchfx.core.spec_fields.Problems`, or the
"expected …" text after ``field: got VALUE —``) and
:func:`~batchfx.core.spec_fields.problem_messages` words pydantic's errors, so every problem is
reported at once, each naming the field, the value and the fix.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pydantic
from croniter import croniter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from batchfx.core.errors import ScheduleError
from batchfx.core.spec_fields import NAME_RE, Problems, problem_messages, short

__all__ = ["CronFields", "RecurrenceFields", "ScheduleError", "ScheduleParts",
           "check_placeholders", "fill_placeholders", "parse_parts"]

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
_RECURRENCE_EXAMPLE = "{frequency: Day, interval: 1, hours: [2], minutes: [0]}"
_TARGET_EXAMPLE = ("{pipeline: NAME}, {deployment: NAME, inputs: container/prefix} or "
                   "{job: {...}}")
# What a value of the wrong type is told (``field: got VALUE — …``).
EXPECTED = {
    "description": "expected text",
    "enabled": "expected true or false",
    "recurrence": f"expected a mapping like {_RECURRENCE_EXAMPLE}",
    "recurrence.interval": "expected a whole number ≥ 1 (how many frequency units between "
                           "runs)",
}


def _unknown(path: str, allowed: list[str]) -> str:
    return f"{path}: unknown field — allowed here: {', '.join(allowed)}"


def _text_keys(data: Any) -> Any:
    # Keys are named as text in messages (a YAML key may be a number).
    return {str(k): v for k, v in data.items()} if isinstance(data, Mapping) else data


# --- field rules -----------------------------------------------------------------------

def _name(name: Any) -> Any:
    if not isinstance(name, str) or not NAME_RE.match(name):
        rule = "3 to 32 of a-z, 0-9 and '-', starting with a letter, e.g. nightly-digits"
        raise Problems([f"name: {'missing' if name is None else f'got {short(name)}'} — "
                        f"expected {rule}"])
    return name


def _target(target: Any) -> Any:
    if not isinstance(target, Mapping):
        got = "missing" if target is None else f"got {short(target)}"
        raise Problems([f"target: {got} — expected {_TARGET_EXAMPLE}"])
    kinds = [k for k in TARGET_KINDS if k in target]
    if len(kinds) != 1:
        got = f"{' and '.join(kinds)} both given" if kinds else f"got {short(dict(target))}"
        raise Problems([f"target: {got} — expected exactly one of {_TARGET_EXAMPLE}"])
    kind, problems = kinds[0], []
    value = target[kind]
    if kind == "job":
        # A pipeline or deployment target's other fields are checked by job_spec_for
        # (batchfx.services.invocations) when the schedule is created.
        problems += [_unknown(f"target.{k}", ["job"]) for k in target if k != "job"]
        if not isinstance(value, Mapping):
            problems.append(f"target.job: got {short(value)} — expected a job spec mapping "
                            "(entry_script, source_directory, inputs, output, ...)")
    elif not isinstance(value, str) or not value.strip():
        problems.append(f"target.{kind}: got {short(value)} — expected the {kind}'s name")
    if problems:
        raise Problems(problems)
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in target.items()}


def _parameters(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError("expected a mapping of parameter name to value, e.g. "
                         "{input_day: '{date-1d:%Y/%m/%d}'}")
    if value and "job" in info.data.get("target", {}):
        raise Problems(["parameters: a job target takes no parameters — write the values "
                        "(placeholders allowed) into target.job itself"])
    return dict(value)


def _time(value: Any) -> Any:
    if value is None:
        return None
    parsed: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        raise ValueError("expected an ISO 8601 time in UTC, e.g. 2026-01-31T02:00:00Z")
    # A time without an offset is UTC, the only time zone schedules use.
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed.replace(microsecond=0)


def _utc(zone: Any) -> Any:
    if not isinstance(zone, str) or zone.strip().upper() not in ("UTC", "Z", "ETC/UTC"):
        raise ValueError("only UTC is supported; give the times in UTC (09:00 Pacific "
                         "Standard Time is 17:00 UTC) and remove time_zone or set it to UTC")
    return zone


def _frequency(raw: Any) -> Any:
    found = next((f for f in FREQUENCIES if isinstance(raw, str) and raw.lower() == f.lower()),
                 None)
    if found is None:
        got = "missing" if raw is None else f"got {short(raw)}"
        raise Problems([f"recurrence.frequency: {got} — expected one of "
                        f"{', '.join(FREQUENCIES)}"])
    return found


def _int_list(value: Any, low: int, high: int) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or any(isinstance(i, bool) or not isinstance(i, int) or not low <= i <= high
                        for i in items):
        raise ValueError(f"expected a whole number or a list of them from {low} to {high}")
    return tuple(sorted(set(items)))


def _week_days(value: Any) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    days = [_DAY_NAMES.get(i.strip().lower()) if isinstance(i, str) else None for i in items]
    if not items or None in days:
        raise ValueError(f"expected a day name or a list of them: "
                         f"{', '.join(calendar.day_name)}")
    return tuple(sorted({d for d in days if d is not None}))


def _pattern(key: str) -> BeforeValidator:
    """``hours``, ``minutes``, ``week_days`` or ``month_days`` of a recurrence."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return ()
        frequency = info.data.get("frequency")
        if frequency is not None and key not in PATTERNS[frequency]:
            allowed = [f for f in FREQUENCIES if key in PATTERNS[f]]
            raise Problems([f"recurrence.{key}: not allowed with frequency {frequency} — it "
                            f"needs frequency {' or '.join(allowed)}; use cron for other "
                            "patterns"])
        found = _week_days(value) if key == "week_days" else _int_list(value, *_RANGES[key])
        if key == "month_days" and info.data.get("week_days"):
            raise Problems(["recurrence.week_days, recurrence.month_days: both given — a "
                            "monthly recurrence runs on week days or on days of the month; "
                            "keep one"])
        return found

    return BeforeValidator(check)


def _expression(path: str) -> Callable[[Any], Any]:
    def check(expression: Any) -> Any:
        if not isinstance(expression, str):
            got = "missing" if expression is None else f"got {short(expression)}"
            raise Problems([f"{path}: {got} — expected a cron expression, {_CRON_EXAMPLE}"])
        fields = expression.split()
        if len(fields) != 5:
            raise Problems([f"{path}: got {short(expression)} ({len(fields)} fields) — "
                            "expected 5 fields: minute hour day-of-month month day-of-week, "
                            f"in UTC, {_CRON_EXAMPLE}"])
        if not croniter.is_valid(expression):
            raise Problems([f"{path}: got {short(expression)} — not a valid cron expression "
                            "(minute 0-59, hour 0-23, day 1-31, month 1-12, day of week 0-6 "
                            f"or MON-SUN), {_CRON_EXAMPLE}"])
        return " ".join(fields)

    return check


def _cron(value: Any) -> Any:
    # The short form, cron: '0 2 * * *', is the expression alone.
    if isinstance(value, Mapping) or value is None:
        return value
    return {"expression": _expression("cron")(value)}


# --- the models ------------------------------------------------------------------------

_Time = Annotated[datetime | None, BeforeValidator(_time)]
_Zone = Annotated[str, BeforeValidator(_utc)]


class RecurrenceFields(BaseModel):
    """``recurrence``: Azure ML's frequency and interval, with an optional pattern."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # In the order their problems are reported; frequency before the patterns it allows.
    time_zone: _Zone = "UTC"
    start_time: _Time = None
    end_time: _Time = None
    frequency: Annotated[str, BeforeValidator(_frequency)] = Field(None, validate_default=True)
    interval: int = Field(1, ge=1)
    hours: Annotated[tuple[int, ...], _pattern("hours")] = ()
    minutes: Annotated[tuple[int, ...], _pattern("minutes")] = ()
    week_days: Annotated[tuple[int, ...], _pattern("week_days")] = ()  # 0 = Monday
    month_days: Annotated[tuple[int, ...], _pattern("month_days")] = ()

    _keys = pydantic.model_validator(mode="before")(_text_keys)


class CronFields(BaseModel):
    """``cron``: a five-field expression (UTC), as a mapping or the expression alone."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    time_zone: _Zone = "UTC"
    start_time: _Time = None
    end_time: _Time = None
    expression: Annotated[str, BeforeValidator(_expression("cron.expression"))] = Field(
        None, validate_default=True)

    _keys = pydantic.model_validator(mode="before")(_text_keys)


class ScheduleParts(BaseModel):
    """The checked fields of a schedule, before they are assembled."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: Annotated[str, BeforeValidator(_name)] = Field(None, validate_default=True)
    description: str = ""
    enabled: bool = True
    target: Annotated[dict[str, Any], BeforeValidator(_target)] = Field(
        None, validate_default=True)
    parameters: Annotated[dict[str, Any], BeforeValidator(_parameters)] = Field(
        default_factory=dict)
    recurrence: RecurrenceFields | None = None
    cron: Annotated[CronFields | None, BeforeValidator(_cron)] = None

    @property
    def start_time(self) -> datetime | None:
        """The start time given with the recurrence or cron, if any."""
        given = self.recurrence or self.cron
        return None if given is None else given.start_time

    @property
    def end_time(self) -> datetime | None:
        """The end time given with the recurrence or cron, if any."""
        given = self.recurrence or self.cron
        return None if given is None else given.end_time


def _unknown_key(path: str) -> str:
    block = path.partition(".")[0]
    return _unknown(path, RECURRENCE_FIELDS if block == "recurrence" else CRON_FIELDS)


def parse_parts(data: object) -> ScheduleParts:
    """Check every field of a schedule mapping; ScheduleError has one message per problem."""
    if not isinstance(data, Mapping):
        expected = "expected a mapping with name, target and recurrence or cron"
        raise ScheduleError([f"schedule: got {type(data).__name__} {short(data)} — {expected}"])
    problems: list[str] = []
    for key in data:
        if key == "time_zone":
            problems.append("time_zone: goes inside recurrence or cron, and only UTC is "
                            "supported — remove it, or move it there as time_zone: UTC")
        elif key not in TOP_FIELDS:
            problems.append(_unknown(str(key), TOP_FIELDS))
    fields = {k: v for k, v in data.items() if k in TOP_FIELDS}
    has_recurrence, has_cron = data.get("recurrence") is not None, data.get("cron") is not None
    one_of = []
    if has_recurrence == has_cron:  # neither is checked: which one was meant is not known
        fields.pop("recurrence", None)
        fields.pop("cron", None)
        how = "both given — keep one" if has_cron else "neither given — add one"
        one_of.append(f"recurrence, cron: {how}; a schedule has exactly one, e.g. "
                      "recurrence: {frequency: Day, interval: 1} or cron: '0 2 * * *'")
    try:
        parts = ScheduleParts.model_validate(fields)
    except pydantic.ValidationError as exc:
        problems += _in_order(exc)
    if problems or one_of:
        raise ScheduleError(problems + one_of)
    return parts


def _in_order(exc: pydantic.ValidationError) -> list[str]:
    """The problems in the order of ScheduleParts' fields, with the keys that recurrence or
    cron does not allow first in theirs (pydantic reports a model's unknown keys last)."""
    unknown: list[str] = []

    def word(path: str) -> str:
        unknown.append(_unknown_key(path))
        return unknown[-1]

    def place(message: str) -> int:
        trigger = message.startswith(("recurrence", "cron"))
        return 0 if not trigger else 1 if message in unknown else 2

    return sorted(problem_messages(exc, unknown=word, expected=EXPECTED), key=place)


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
        what = f"{path}: {short(text)} has {match.group(0)!r}"
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
