"""Deployments: a named scoring configuration (code, model, default job settings).

Two formats parse into one :class:`Deployment`: batchfx's own
``{name, source_directory, entry_script, model?, output?, settings: {...}}`` and an
Azure ML v2 batch deployment YAML (``code_configuration``, ``resources``, ``settings``; read
into the own format by :mod:`batchfx.core.azureml_deployment`). The code and settings are
validated by building a :class:`~batchfx.core.spec.JobSpec`, so a bad setting gets the same
message as in a job spec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SkipValidation
from pydantic_core import PydanticCustomError

from batchfx.core.azureml_deployment import REFUSED, from_azureml, is_azureml, model_path
from batchfx.core.environments import read_environment_files
from batchfx.core.errors import SpecError
from batchfx.core.spec import V2_ALIASES, JobSpec, parse_job_spec
from batchfx.core.spec_fields import (
    NAME_RE,
    Problems,
    problem_messages,
    rule,
    short,
    unknown_field,
)
from batchfx.core.spec_io import load_yaml, read_spec_document
from batchfx.core.spec_items import ModelSpec

__all__ = [
    "INVOCATION_FIELDS",
    "NAME_RE",
    "NAME_RULE",
    "Deployment",
    "DeploymentName",
    "check_name",
    "load_document",
    "normalise_settings",
    "parse_deployment",
    "tags_value",
]

NAME_RULE = ("expected 3 to 32 of a-z, 0-9 and '-', starting with a letter and not ending "
             "with '-', e.g. digits-scoring")

_RETRY_KEYS = {"max_retries": "run_max_try", "timeout": "run_invocation_timeout"}
_CODE_FIELDS = ("source_directory", "entry_script", "model")
# Given with each invocation, never stored as a deployment setting.
INVOCATION_FIELDS = ("name", "inputs", "output")
_SETTINGS_FIELDS = [f for f in JobSpec.model_fields if f not in (*INVOCATION_FIELDS, *_CODE_FIELDS)]
_SETTINGS_NAMES = (*_SETTINGS_FIELDS, *V2_ALIASES, "retry_settings")
_MISPLACED = {
    "name": "the job name is the deployment's name; remove it",
    "inputs": "inputs come with each invocation; remove it",
    "output": "give output at the top level of the deployment (a default) or with each invocation",
    "source_directory": "give it at the top level of the deployment",
    "entry_script": "give it at the top level of the deployment",
    "model": "give it at the top level of the deployment",
}
_OWN_FIELDS = ("$schema", "name", "description", "tags", "endpoint_name", "source_directory",
               "entry_script", "model", "output", "settings")
# A JobSpec problem of an Azure ML deployment names the field as the YAML gives it.
_AZUREML_LABELS = {"entry_script:": "code_configuration.scoring_script:",
                   "source_directory:": "code_configuration.code:",
                   "node_count:": "resources.instance_count:"}
_EXPECTED = {"name": NAME_RULE, "description": "expected a string",
             "endpoint_name": "expected a string"}
_NO_SCRIPT = ("code_configuration: missing — a deployment needs its scoring script "
              "(code_configuration: {code, scoring_script}); MLflow models without a script "
              "can be scored by a job spec with model and no entry_script")


def _given(value: Any) -> Any:
    if value is None:  # a name given as null is a name not given
        raise PydanticCustomError("missing", "Field required")
    return value


# A deployment's or pipeline's name: the job name rule.
DeploymentName = Annotated[str, BeforeValidator(_given),
                           rule(lambda v: bool(NAME_RE.match(v)) or NAME_RULE)]
_NAME = pydantic.TypeAdapter(DeploymentName, config=ConfigDict(strict=True))


def check_name(field_name: str, value: object) -> str | None:
    """The problem with a deployment or pipeline name, or None when it is valid."""
    try:
        _NAME.validate_python(value)
    except pydantic.ValidationError as exc:
        return problem_messages(exc, unknown=str, expected={field_name: NAME_RULE},
                                prefix=field_name)[0]
    return None


def normalise_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """Job settings with v2 names (``output_file_name``, ``retry_settings``…) given v1 names.

    A setting given under both names is left as it is, for parse_job_spec to report.
    """
    out = {str(k): v for k, v in data.items()}
    for v2, v1 in V2_ALIASES.items():
        if v2 in out and v1 not in out:
            out[v1] = out.pop(v2)
    retry = out.get("retry_settings")
    if isinstance(retry, Mapping) and all(
            k in _RETRY_KEYS and _RETRY_KEYS[k] not in out for k in retry):
        del out["retry_settings"]
        out.update({_RETRY_KEYS[k]: v for k, v in retry.items()})
    return out


def _text(value: Any) -> Any:
    return value or ""


def tags_value(value: Any) -> Any:
    """Tags: a mapping, its names and values as strings."""
    tags = value or {}
    if not isinstance(tags, Mapping):
        raise ValueError("expected a mapping of name to string")
    return {str(k): str(v) for k, v in tags.items()}


def _model(value: Any) -> Any:
    """A ``{path, name, version}`` model as the job spec records it (one with problems is left
    for the job spec check to report)."""
    if isinstance(value, Mapping):
        try:
            return ModelSpec.model_validate(dict(value)).model_dump(mode="json")
        except pydantic.ValidationError:
            pass
    return value


def _job_settings(value: Any, info: pydantic.ValidationInfo) -> Any:
    """The settings, known names only, validated with the code as the job spec they make
    (placeholder inputs): v1 names, defaults filled."""
    settings = value or {}
    problems: list[str] = []
    if not isinstance(settings, Mapping):
        problems.append(f"settings: got {short(settings)} — expected a mapping of job "
                        f"settings such as {{mini_batch_size: 10}}")
        settings = {}
    settings = dict(settings)  # v2 names stay: parse_job_spec's messages name them
    for key in [k for k in settings if k not in _SETTINGS_NAMES]:
        problems.append(f"settings.{key}: {_MISPLACED[key]}" if key in _MISPLACED
                        else unknown_field(f"settings.{key}", _SETTINGS_NAMES, "job settings",
                                           fold_case=False))
        del settings[key]
    # The fields before settings, as validated (an invalid name is reported once, by itself).
    given = info.data
    candidate = {**settings, "inputs": "placeholder/inputs",
                 "name": given.get("name") or "placeholder",
                 "output": given.get("output") or "placeholder/out"}
    candidate.update({k: given[k] for k in _CODE_FIELDS if given.get(k) is not None})
    labels: Mapping[str, str] = (info.context or {}).get("labels", {})
    try:
        spec = parse_job_spec(candidate)
    except SpecError as exc:
        for message in exc.problems:
            old = next((o for o in labels if message.startswith(o)), "")
            problems.append(labels[old] + message[len(old):] if old else message)
        raise Problems(problems) from None
    if spec.entry_script is None or spec.source_directory is None:
        problems.append(_NO_SCRIPT)
    if problems:
        raise Problems(problems)
    record = spec.to_record()
    return {k: record[k] for k in _SETTINGS_FIELDS}


class Deployment(BaseModel):
    """A named scoring configuration; ``settings``: job settings, v1 names, defaults filled.

    The code, model and output are checked with the settings, as the job spec they make
    (``settings`` is validated last, with them); :func:`parse_deployment` reads either format.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: DeploymentName
    description: Annotated[str, BeforeValidator(_text)] = ""
    endpoint_name: Annotated[str, BeforeValidator(_text)] = ""
    tags: Annotated[dict[str, str], BeforeValidator(tags_value)] = Field(default_factory=dict)
    # Checked by the settings' job spec, which refuses a deployment without them.
    source_directory: SkipValidation[str | None] = None
    entry_script: SkipValidation[str | None] = None
    # a path or reference, or {path, name, version…}
    model: Annotated[SkipValidation[str | dict[str, Any] | None], BeforeValidator(_model)] = None
    output: Annotated[SkipValidation[str | None], BeforeValidator(lambda v: v or None)] = None
    settings: Annotated[dict[str, Any], BeforeValidator(_job_settings)] = Field(
        default_factory=dict, validate_default=True)

    def to_record(self) -> dict[str, Any]:
        """Canonical JSON-able dict in batchfx's own format."""
        return {"name": self.name, "description": self.description, "tags": dict(self.tags),
                "endpoint_name": self.endpoint_name,
                "source_directory": self.source_directory, "entry_script": self.entry_script,
                "model": self.model, "output": self.output, "settings": dict(self.settings)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Deployment:
        """Rebuild a deployment stored with :meth:`to_record` (validated again)."""
        return parse_deployment(record)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _own_format(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        own, problems = _document(data)
        if problems:
            raise Problems(problems)
        return own


def _unknown(path: str) -> str:
    if path in REFUSED:
        return f"{path}: {REFUSED[path]}"
    return unknown_field(path, _OWN_FIELDS, "fields of a deployment", fold_case=False)


def _document(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Either format as batchfx's own (``$schema`` dropped, a ``model`` mapping read), and
    the problems of reading it (those of an Azure ML document's own parts)."""
    if is_azureml(data):
        own, problems = from_azureml(data)
    else:
        own, problems = {str(k): v for k, v in data.items()}, []
        own["model"] = None
        if "model" in data:
            own["model"], problems = model_path(data["model"])
    own.pop("$schema", None)
    return own, problems


def parse_deployment(data: object) -> Deployment:
    """Validate a deployment (batchfx's format or Azure ML v2 YAML); SpecError lists problems."""
    if not isinstance(data, Mapping):
        raise SpecError([f"deployment: got {type(data).__name__} {short(data)} — expected a "
                         "mapping such as {name: digits, source_directory: ./code, "
                         "entry_script: score.py}"])
    own, problems = _document(data)
    # Read through (problems and all) so that every problem is reported at once.
    context = {"labels": _AZUREML_LABELS if is_azureml(data) else {}}
    try:
        deployment = Deployment.model_validate(own, context=context)
    except pydantic.ValidationError as exc:
        problems += problem_messages(exc, unknown=_unknown, expected=_EXPECTED,
                                     unknown_first=True)
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
    return deployment


def load_document(path: str | os.PathLike[str], what: str = "deployment") -> object:
    """Read a YAML or JSON file; SpecError names the file and the line of a syntax error."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SpecError([f"{file}: cannot read the {what} ({reason})"]) from None
    # An environment's conda or requirements file, relative to this one, read in.
    return read_environment_files(read_spec_document(file, text), file.resolve().parent,
                                  load_yaml)
