"""Published pipelines: a named job template with typed parameters, run with assignments.

A pipeline is either a whole job spec template (``job:``) or a deployment plus an
``inputs`` template. Templates use Azure ML's ``${{parameters.NAME}}`` anywhere in string
values; a string that is exactly one placeholder takes the parameter's typed value.
A pipeline (:class:`Pipeline`) and the deployment step of one (:class:`DeploymentStep`) are
pydantic models, as are its parameters and a run's assignments
(:mod:`batchfx.core.pipeline_parameters`); their problems are worded by
:func:`~batchfx.core.spec_fields.problem_messages`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SkipValidation

from batchfx.core.deployments import NAME_RULE, DeploymentName, tags_value
from batchfx.core.errors import SpecError
from batchfx.core.pipeline_parameters import (
    Parameter,
    ParameterDeclaration,
    ParameterType,
    coerce_parameter,
    declared_parameters,
    placeholders,
    render,
    validate_assignments,
)
from batchfx.core.spec import parse_job_spec
from batchfx.core.spec_fields import Problems, problem_messages, short

__all__ = [
    "DeploymentStep",
    "Parameter",
    "ParameterDeclaration",
    "ParameterType",
    "Pipeline",
    "coerce_parameter",
    "parse_pipeline",
    "placeholders",
    "render",
    "validate_assignments",
]

_FIELDS = ("name", "description", "tags", "parameters", "job", "deployment",
           "deployment_version", "inputs", "output", "settings")
_DEPLOYMENT_FIELDS = ("deployment", "deployment_version", "inputs", "output", "settings")
# Stands in, at publish time, for a string parameter without a default.
_SAMPLE = "zzsamplezz"
_SAMPLES: dict[str, Any] = {"string": _SAMPLE, "integer": 1, "number": 1.0, "boolean": False}


def _template(value: Any) -> Any:
    """A job template as given (a mapping copied)."""
    return dict(value) if isinstance(value, Mapping) else value


def _settings(value: Any) -> Any:
    """Settings as given (a mapping copied); none given are none."""
    return dict(value) if isinstance(value, Mapping) else value or {}


def _folder_template(value: Any) -> Any:
    if not isinstance(value, str | Mapping) or not value:
        raise ValueError("expected a folder template such as 'data/${{parameters.date}}' or "
                         "{path, type, glob}")
    return value


def _overrides(value: Any) -> Any:
    settings = value or {}
    if not isinstance(settings, Mapping):
        raise ValueError("expected a mapping of job settings that override the deployment's")
    return dict(settings)


class DeploymentStep(BaseModel):
    """What a deployment pipeline runs: a registered deployment (a version of it, or the
    latest) over an ``inputs`` template, with ``output`` and ``settings`` overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    deployment: DeploymentName
    deployment_version: int | None = Field(None, ge=1)
    inputs: Annotated[Any, BeforeValidator(_folder_template)] = Field(None, validate_default=True)
    output: Any = None
    settings: Annotated[dict[str, Any], BeforeValidator(_overrides)] = Field(
        default_factory=dict)


_EXPECTED = {"name": NAME_RULE, "deployment": NAME_RULE,
             "deployment_version": "expected a version number ≥ 1, or leave it out for the "
                                   "latest"}


def _job_problems(job: Any, name: str, parameters: Mapping[str, Parameter]) -> list[str]:
    """A job template validated with defaults (samples where there is none) as values."""
    if not isinstance(job, Mapping):
        return [f"job: got {short(job)} — expected a job spec mapping with "
                "${{parameters.NAME}} placeholders"]
    template = {"name": name, **job}
    values = {n: p.default if not p.required else _SAMPLES[p.type] for n, p in parameters.items()}
    try:
        parse_job_spec(render(template, values, path="job"))
    except SpecError as exc:
        # A sample stands in for a value only known when the pipeline runs: not its fault.
        return [f"job: {p}" for p in exc.problems if _SAMPLE not in p]
    return []


def _template_problems(given: Mapping[str, Any], parameters: Mapping[str, Parameter],
                       name: object) -> list[str]:
    """The problems of what a pipeline runs: one of a job template and a deployment step;
    placeholders that name declared parameters; the step, or the job template as a job."""
    problems: list[str] = []
    has_job, has_deployment = "job" in given, "deployment" in given
    if has_job == has_deployment:
        problems.append("job and deployment: give exactly one — job: a job spec template, or "
                        "deployment: the name of a registered deployment (with inputs:)")
    if has_job:
        extra = [k for k in _DEPLOYMENT_FIELDS if k in given and k != "deployment"]
        problems += [f"{k}: belongs to a deployment pipeline; put it inside job:" for k in extra]
    try:  # every placeholder must name a declared parameter
        render({k: given[k] for k in ("job", "inputs", "output", "settings") if k in given},
               {n: _SAMPLES[p.type] for n, p in parameters.items()})
        rendered = True
    except SpecError as exc:
        problems += exc.problems
        rendered = False
    if has_deployment:
        try:
            DeploymentStep.model_validate({k: given[k] for k in _DEPLOYMENT_FIELDS if k in given})
        except pydantic.ValidationError as exc:
            problems += problem_messages(exc, unknown=str, expected=_EXPECTED)
    elif has_job and rendered and isinstance(name, str):
        problems += _job_problems(given["job"], name, parameters)
    return problems


def _parameters(value: Any) -> Any:
    parameters, problems = declared_parameters(value)
    if problems:
        raise Problems(problems)
    return parameters


class Pipeline(BaseModel):
    """A published pipeline: parameters and either a ``job`` template or a deployment's
    (:class:`DeploymentStep`). What it runs is checked once its fields are valid
    (``_runs``): the template's placeholders, and the step or the job the template makes."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: DeploymentName
    parameters: Annotated[dict[str, Parameter], BeforeValidator(_parameters)] = Field(
        default_factory=dict)
    description: Annotated[str, BeforeValidator(lambda v: str(v or ""))] = ""
    tags: Annotated[dict[str, str], BeforeValidator(tags_value)] = Field(default_factory=dict)
    job: Annotated[SkipValidation[dict[str, Any] | None], BeforeValidator(_template)] = None
    deployment: SkipValidation[str | None] = None
    deployment_version: SkipValidation[int | None] = None
    inputs: SkipValidation[Any] = None
    output: SkipValidation[Any] = None
    settings: Annotated[SkipValidation[dict[str, Any]], BeforeValidator(_settings)] = Field(
        default_factory=dict)

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

    @pydantic.model_validator(mode="after")
    def _runs(self) -> Pipeline:
        given = {k: getattr(self, k) for k in self.model_fields_set}
        problems = _template_problems(given, self.parameters, self.name)
        if problems:
            raise Problems(problems)
        return self


def _unknown(path: str) -> str:
    return (f"{path}: unknown field — allowed fields of a pipeline are: "
            f"{', '.join(_FIELDS)}")


def parse_pipeline(data: object) -> Pipeline:
    """Validate a pipeline definition; SpecError lists one message per problem."""
    if not isinstance(data, Mapping):
        raise SpecError([f"pipeline: got {type(data).__name__} {short(data)} — expected a "
                         "mapping such as {name: nightly, parameters: {...}, job: {...}}"])
    given = {str(k): v for k, v in data.items()}
    try:
        return Pipeline.model_validate(given)
    except pydantic.ValidationError as exc:
        problems = problem_messages(exc, unknown=_unknown, expected=_EXPECTED,
                                    unknown_first=True)
        fields_refused = any(err["loc"] for err in exc.errors())
    if fields_refused:
        # What the pipeline runs is checked all the same (the valid parameters standing for
        # the declared ones), so that every problem is reported at once.
        problems += _template_problems(given, declared_parameters(given.get("parameters"))[0],
                                       given.get("name"))
    raise SpecError(list(dict.fromkeys(problems)))
