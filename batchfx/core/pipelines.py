"""Published pipelines: a named job template with typed parameters, run with assignments.

A pipeline is either a whole job spec template (``job:``) or a deployment plus an
``inputs`` template. Templates use Azure ML's ``${{parameters.NAME}}`` anywhere in string
values; a string that is exactly one placeholder takes the parameter's typed value.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from batchfx.core.deployments import check_name
from batchfx.core.errors import SpecError
from batchfx.core.spec import parse_job_spec

__all__ = [
    "Parameter",
    "ParameterType",
    "Pipeline",
    "coerce_parameter",
    "parse_pipeline",
    "placeholders",
    "render",
    "validate_assignments",
]

ParameterType = Literal["string", "integer", "number", "boolean"]

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
_PARAMETER = re.compile(r"^\s*parameters\.([A-Za-z_][A-Za-z0-9_]*)\s*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_FIELDS = ("name", "description", "tags", "parameters", "job", "deployment",
           "deployment_version", "inputs", "output", "settings")
_DEPLOYMENT_FIELDS = ("deployment", "deployment_version", "inputs", "output", "settings")
# Stands in, at publish time, for a string parameter without a default.
_SAMPLE = "zzsamplezz"
_SAMPLES: dict[str, Any] = {"string": _SAMPLE, "integer": 1, "number": 1.0, "boolean": False}


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Parameter:
    """A declared pipeline parameter; ``required`` when it has no default."""

    name: str
    type: ParameterType
    default: Any = None
    required: bool = True
    description: str = ""

    def to_record(self) -> dict[str, Any]:
        """The declaration as published: ``{type, default?, description?}``."""
        record: dict[str, Any] = {"type": self.type}
        if not self.required:
            record["default"] = self.default
        if self.description:
            record["description"] = self.description
        return record


def coerce_parameter(parameter: Parameter, value: Any) -> Any:
    """``value`` as the parameter's type; ValueError names the parameter, value and type."""
    kind, wrong = parameter.type, f"{parameter.type} parameter {parameter.name!r}: got {value!r}"
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"{wrong} — expected true or false")
    if isinstance(value, bool):  # a bool is an int to Python, never to a pipeline
        raise ValueError(f"{wrong} — expected {_EXAMPLES[kind]}")
    if kind == "string":
        if isinstance(value, str | int | float):
            return str(value)
    elif kind == "integer":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INTEGER.match(value):
            return int(value)
    elif isinstance(value, int | float | str):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return int(number) if isinstance(value, int) else number
    raise ValueError(f"{wrong} — expected {_EXAMPLES[kind]}")


_EXAMPLES = {"string": "a string", "integer": "a whole number such as 5 (or \"5\")",
             "number": "a number such as 0.5 (or \"0.5\")", "boolean": "true or false"}


def validate_assignments(declared: Mapping[str, Parameter],
                         assignments: Mapping[str, Any] | None) -> dict[str, Any]:
    """Typed values of every declared parameter: assignments checked, defaults filled.

    Strings are accepted for numbers and booleans, as Azure Data Factory sends every
    value: ``"5"`` for an integer, ``"0.5"`` for a number, ``"true"``/``"false"`` (any
    case) for a boolean; numbers are accepted for strings. A null assignment means "use
    the default". SpecError lists every unknown, mistyped or missing parameter.
    """
    problems: list[str] = []
    given = dict(assignments or {})
    allowed = ", ".join(declared) or "none (this pipeline declares no parameters)"
    for name in given:
        if name not in declared:
            close = difflib.get_close_matches(str(name), list(declared), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"parameter {name!r}: unknown — {hint}allowed parameters are: "
                            f"{allowed}")
    values: dict[str, Any] = {}
    for name, parameter in declared.items():
        value = given.get(name)
        if value is None:
            if parameter.required:
                problems.append(f"{parameter.type} parameter {name!r}: missing — it has no "
                                "default; assign it a value")
            else:
                values[name] = parameter.default
            continue
        try:
            values[name] = coerce_parameter(parameter, value)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise SpecError(problems)
    return values


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(template: Any, values: Mapping[str, Any], *, path: str = "") -> Any:
    """``template`` with each ``${{parameters.NAME}}`` replaced; SpecError on unknown names.

    A string that is exactly one placeholder becomes the typed value; placeholders inside
    longer strings are replaced by the value's text (booleans as ``true``/``false``).
    """
    problems: list[str] = []
    result = _render(template, values, path, problems)
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
    return result


def _render(template: Any, values: Mapping[str, Any], path: str, problems: list[str]) -> Any:
    if isinstance(template, Mapping):
        return {k: _render(v, values, f"{path}.{k}".lstrip("."), problems)
                for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [_render(v, values, f"{path}[{i}]", problems) for i, v in enumerate(template)]
    if not isinstance(template, str) or "${{" not in template:
        return template
    known = ", ".join(values) or "none"
    matches = list(_EXPRESSION.finditer(template))
    names: list[str] = []
    for match in matches:
        found = _PARAMETER.match(match.group(1))
        if found is None:
            problems.append(f"{path}: {match.group(0)!r} is not supported — only "
                            "${{parameters.NAME}} placeholders are")
        elif found.group(1) not in values:
            problems.append(f"{path}: {match.group(0)!r} names no declared parameter — "
                            f"declared parameters are: {known}")
        else:
            names.append(found.group(1))
    if len(names) != len(matches):
        return template
    if len(matches) == 1 and matches[0].span() == (0, len(template)):
        return values[names[0]]
    texts = iter(_text(values[n]) for n in names)
    return _EXPRESSION.sub(lambda _: next(texts), template)


def placeholders(template: Any) -> set[str]:
    """The parameter names a template's ``${{parameters.NAME}}`` placeholders use."""
    if isinstance(template, Mapping):
        return set().union(*(placeholders(v) for v in template.values()))
    if isinstance(template, list | tuple):
        return set().union(*(placeholders(v) for v in template))
    if not isinstance(template, str):
        return set()
    return {m.group(1) for e in _EXPRESSION.finditer(template)
            if (m := _PARAMETER.match(e.group(1)))}


@dataclass(frozen=True)
class Pipeline:
    """A published pipeline: parameters and either a ``job`` template or a deployment's."""

    name: str
    parameters: dict[str, Parameter]
    job: dict[str, Any] | None = None
    deployment: str | None = None
    deployment_version: int | None = None
    inputs: Any = None
    output: Any = None
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """Canonical JSON-able dict, the format :func:`parse_pipeline` reads."""
        record: dict[str, Any] = {
            "name": self.name, "description": self.description, "tags": dict(self.tags),
            "parameters": {n: p.to_record() for n, p in self.parameters.items()}}
        if self.job is not None:
            record["job"] = self.job
        else:
            record.update(deployment=self.deployment, deployment_version=self.deployment_version,
                          inputs=self.inputs, output=self.output, settings=dict(self.settings))
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Pipeline:
        """Rebuild a pipeline stored with :meth:`to_record` (validated again)."""
        return parse_pipeline(record)


def _parameter(name: object, value: object, problems: list[str]) -> Parameter | None:
    where = f"parameters.{name}"
    if not isinstance(name, str) or not _IDENT.match(name):
        problems.append(f"parameters: got name {_short(name)} — expected letters, digits and "
                        "'_', not starting with a digit, e.g. top_k")
        return None
    if not isinstance(value, Mapping):
        problems.append(f"{where}: got {_short(value)} — expected {{type: integer, default: 5}}")
        return None
    unknown = [k for k in value if k not in ("type", "default", "description")]
    problems += [f"{where}.{k}: unknown field — allowed: type, default, description"
                 for k in unknown]
    kind = value.get("type")
    if kind not in get_args(ParameterType):
        problems.append(f"{where}.type: got {_short(kind)} — expected string, integer, number "
                        "or boolean")
        return None
    parameter = Parameter(name, cast(ParameterType, kind),
                          description=str(value.get("description") or ""))
    if value.get("default") is None:
        return parameter
    try:
        default = coerce_parameter(parameter, value["default"])
    except ValueError as exc:
        problems.append(f"{where}.default: {exc}")
        return None
    return Parameter(name, parameter.type, default, False, parameter.description)


def _check_job(job: Any, name: str, parameters: Mapping[str, Parameter],
               problems: list[str]) -> dict[str, Any] | None:
    """Validate a job template with defaults (samples where there is none) as values."""
    if not isinstance(job, Mapping):
        problems.append(f"job: got {_short(job)} — expected a job spec mapping with "
                        "${{parameters.NAME}} placeholders")
        return None
    template = {"name": name, **job}
    values = {n: p.default if not p.required else _SAMPLES[p.type] for n, p in parameters.items()}
    try:
        parse_job_spec(render(template, values, path="job"))
    except SpecError as exc:
        # A sample stands in for a value only known when the pipeline runs: not its fault.
        problems += [f"job: {p}" for p in exc.problems if _SAMPLE not in p]
    return dict(job)


def parse_pipeline(data: object) -> Pipeline:
    """Validate a pipeline definition; SpecError lists one message per problem."""
    if not isinstance(data, Mapping):
        raise SpecError([f"pipeline: got {type(data).__name__} {_short(data)} — expected a "
                         "mapping such as {name: nightly, parameters: {...}, job: {...}}"])
    problems = [f"{k}: unknown field — allowed fields of a pipeline are: {', '.join(_FIELDS)}"
                for k in data if k not in _FIELDS]
    name = data.get("name")
    problem = check_name("name", name)
    if problem:
        problems.append(problem)
    declared = data.get("parameters") or {}
    if not isinstance(declared, Mapping):
        problems.append(f"parameters: got {_short(declared)} — expected a mapping of name to "
                        "{type, default?, description?}")
        declared = {}
    parameters = {p.name: p for n, v in declared.items()
                  if (p := _parameter(n, v, problems)) is not None}
    has_job, has_deployment = "job" in data, "deployment" in data
    if has_job == has_deployment:
        problems.append("job and deployment: give exactly one — job: a job spec template, or "
                        "deployment: the name of a registered deployment (with inputs:)")
    if has_job:
        extra = [k for k in _DEPLOYMENT_FIELDS if k in data and k != "deployment"]
        problems += [f"{k}: belongs to a deployment pipeline; put it inside job:" for k in extra]
    try:  # every placeholder must name a declared parameter
        render({k: data[k] for k in ("job", "inputs", "output", "settings") if k in data},
               {n: _SAMPLES[p.type] for n, p in parameters.items()})
        rendered = True
    except SpecError as exc:
        problems += exc.problems
        rendered = False
    kwargs: dict[str, Any] = {}
    if has_deployment:
        kwargs = _deployment_fields(data, problems)
    elif has_job and rendered and isinstance(name, str):
        kwargs["job"] = _check_job(data["job"], name, parameters, problems)
    given_tags = data.get("tags") or {}
    if not isinstance(given_tags, Mapping):
        problems.append(f"tags: got {_short(given_tags)} — expected a mapping of name to string")
        given_tags = {}
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
    return Pipeline(name=str(name), parameters=parameters,
                    tags={str(k): str(v) for k, v in given_tags.items()},
                    description=str(data.get("description") or ""), **kwargs)


def _deployment_fields(data: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    problem = check_name("deployment", data.get("deployment"))
    if problem:
        problems.append(problem)
    version = data.get("deployment_version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                or version < 1):
        problems.append(f"deployment_version: got {_short(version)} — expected a version "
                        "number ≥ 1, or leave it out for the latest")
    inputs = data.get("inputs")
    if not isinstance(inputs, str | Mapping) or not inputs:
        problems.append(f"inputs: got {_short(inputs)} — expected a folder template such as "
                        "'data/${{parameters.date}}' or {path, type, glob}")
    settings = data.get("settings") or {}
    if not isinstance(settings, Mapping):
        problems.append(f"settings: got {_short(settings)} — expected a mapping of job "
                        "settings that override the deployment's")
        settings = {}
    return {"deployment": data.get("deployment"), "deployment_version": version,
            "inputs": inputs, "output": data.get("output"), "settings": dict(settings)}
