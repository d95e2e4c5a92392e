"""Deployments: a named scoring configuration (code, model, default job settings).

Two formats parse into one :class:`Deployment`: batchfx's own
``{name, source_directory, entry_script, model?, output?, settings: {...}}`` and an
Azure ML v2 batch deployment YAML (``code_configuration``, ``resources``, ``settings``).
Settings are validated by building a :class:`~batchfx.core.spec.JobSpec`, so a bad setting
gets the same message as in a job spec.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchfx.core.environments import read_environment_files
from batchfx.core.errors import SpecError
from batchfx.core.spec import V2_ALIASES, JobSpec, parse_job_spec
from batchfx.core.spec_io import load_yaml, read_spec_document

__all__ = [
    "INVOCATION_FIELDS",
    "NAME_RE",
    "Deployment",
    "check_name",
    "load_document",
    "normalise_settings",
    "parse_deployment",
]

# The job name rule (batchfx.core.spec), shared by deployments and pipelines.
NAME_RE = re.compile(r"^(?=.{3,32}$)[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAME_RULE = ("expected 3 to 32 of a-z, 0-9 and '-', starting with a letter and not ending "
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
_METADATA = ("$schema", "name", "description", "tags", "endpoint_name")
_OWN_FIELDS = (*_METADATA, "source_directory", "entry_script", "model", "output", "settings")
_AZUREML_FIELDS = (*_METADATA, "type", "model", "code_configuration", "resources", "settings",
                   "environment", "compute")
# Settings older Azure ML YAMLs give at the top level instead of under settings:.
_LEGACY_SETTINGS = ("mini_batch_size", "output_action", "output_file_name", "retry_settings",
                    "error_threshold", "logging_level", "environment_variables",
                    "max_concurrency_per_instance")
_REFUSED = {
    "properties": "not supported — batchfx has no deployment properties; put job settings "
                  "under settings: and remove properties",
    "job_definition": "not supported — pipeline component deployments are not; publish a "
                      "batchfx pipeline (POST /api/pipelines) instead and remove job_definition",
    "component": "not supported — pipeline component deployments are not; publish a batchfx "
                 "pipeline (POST /api/pipelines) instead and remove component",
}
_AZUREML_HINTS = ("code_configuration", "endpoint_name", "type", "resources", "$schema")
_RELABEL = {"entry_script:": "code_configuration.scoring_script:",
            "source_directory:": "code_configuration.code:"}


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown(path: str, allowed: tuple[str, ...] | list[str], what: str) -> str:
    key = path.rpartition(".")[2]
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{path}: unknown field — {hint}allowed {what} are: {', '.join(allowed)}"


def check_name(field_name: str, value: object) -> str | None:
    """The problem with a deployment or pipeline name, or None when it is valid."""
    if isinstance(value, str) and NAME_RE.match(value):
        return None
    if value is None:
        return f"{field_name}: missing — required, {_NAME_RULE}"
    return f"{field_name}: got {_short(value)} — {_NAME_RULE}"


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


@dataclass(frozen=True)
class Deployment:
    """A named scoring configuration; ``settings``: job settings, v1 names, defaults filled."""

    name: str
    source_directory: str
    entry_script: str
    model: str | dict[str, Any] | None = None  # a path or reference, or {path, name, version}
    output: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    endpoint_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)

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


def _is_azureml(data: Mapping[str, Any]) -> bool:
    own = "source_directory" in data or "entry_script" in data
    return not own and any(key in data for key in _AZUREML_HINTS)


def _registry_reference(field_name: str, value: object) -> str | None:
    if isinstance(value, str) and value.lower().startswith("azureml:"):
        return (f"{field_name}: {value!r} is an Azure ML registry reference; give a folder "
                "path (a local folder, or container/prefix in the app's storage)")
    return None


def _model_path(value: object, problems: list[str]) -> object:
    """An Azure ML ``model`` (a string, or ``{path, name, version…}``) → a folder path or a
    registered model reference (``azureml:name:version`` is kept as it is)."""
    if isinstance(value, Mapping):
        allowed = ("path", "name", "version", "description", "tags", "type")
        problems += [_unknown(f"model.{k}", allowed, "keys of model") for k in value
                     if k not in allowed]
        kind = value.get("type", "custom_model")
        if kind not in ("custom_model", "mlflow_model"):
            problems.append(f"model.type: got {_short(kind)} — expected custom_model or "
                            "mlflow_model (a folder of files)")
        if "path" in value and "name" in value:  # a folder named for Model.get_model_path
            return {k: value[k] for k in ("path", "name", "version") if k in value}
        if "path" in value:
            return value.get("path")
        if "name" in value and "version" in value:
            return f"{value['name']}:{value['version']}"
        problems.append("model.path: missing — give the model's folder, e.g. path: ./model, "
                        "or a registered model as model: azureml:name:version")
        return None
    return value


def _from_azureml(data: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Translate an Azure ML v2 batch deployment into batchfx's own format."""
    own: dict[str, Any] = {k: data[k] for k in _METADATA if k in data}
    if data.get("type", "model") != "model":
        problems.append(f"type: got {_short(data['type'])} — only model deployments are "
                        "supported; publish a batchfx pipeline for anything else")
    if "model" in data:
        own["model"] = _model_path(data["model"], problems)
    code = data.get("code_configuration")
    if not isinstance(code, Mapping):
        problems.append(f"code_configuration: got {_short(code)} — batchfx needs a scoring "
                        "script: code_configuration: {code: ./code, scoring_script: score.py}")
        code = {}
    problems += [_unknown(f"code_configuration.{k}", ("code", "scoring_script"),
                          "keys of code_configuration") for k in code
                 if k not in ("code", "scoring_script")]
    reference = _registry_reference("code_configuration.code", code.get("code"))
    if reference:
        problems.append(reference)
    own["source_directory"] = None if reference else code.get("code")
    own["entry_script"] = code.get("scoring_script")
    settings: dict[str, Any] = {}
    # Accepted and reported as not applied (the job's ignored_settings), as Azure ML users
    # give them: where and with what packages a job runs is the app's.
    if data.get("environment") is not None:
        settings["environment"] = data["environment"]
    if data.get("compute") is not None:
        settings["compute_target"] = data["compute"]
    resources = data.get("resources", {})
    if isinstance(resources, Mapping):
        for key, value in resources.items():
            if key == "instance_count":
                settings["node_count"] = value
            elif key == "instance_type":
                problems.append("resources.instance_type: not supported — batchfx runs on the "
                                "Functions app's instances; remove it")
            else:
                problems.append(_unknown(f"resources.{key}", ("instance_count",),
                                         "keys of resources"))
    else:
        problems.append(f"resources: got {_short(resources)} — expected {{instance_count: 2}}")
    legacy = {k: data[k] for k in _LEGACY_SETTINGS if k in data}
    block = data.get("settings", {})
    nested = dict(block) if isinstance(block, Mapping) else {}
    for key in sorted(set(legacy) & set(nested)):
        if legacy[key] != nested[key]:
            problems.append(f"{key}: given at the top level ({_short(legacy[key])}) and under "
                            f"settings ({_short(nested[key])}) — give it once, under settings")
    own["settings"] = {**settings, **legacy, **nested} if isinstance(block, Mapping) else block
    for key in data:
        if key in _REFUSED:
            problems.append(f"{key}: {_REFUSED[key]}")
        elif key not in _AZUREML_FIELDS and key not in _LEGACY_SETTINGS:
            problems.append(_unknown(key, _AZUREML_FIELDS, "fields of an Azure ML batch "
                                                           "deployment"))
    return own


def _text(data: Mapping[str, Any], key: str, problems: list[str]) -> str:
    value = data.get(key) or ""
    if not isinstance(value, str):
        problems.append(f"{key}: got {_short(value)} — expected a string")
        return ""
    return value


def _tags(data: Mapping[str, Any], problems: list[str]) -> dict[str, str]:
    tags = data.get("tags") or {}
    if not isinstance(tags, Mapping):
        problems.append(f"tags: got {_short(tags)} — expected a mapping of name to string")
        return {}
    return {str(k): str(v) for k, v in tags.items()}


def parse_deployment(data: object) -> Deployment:
    """Validate a deployment (batchfx's format or Azure ML v2 YAML); SpecError lists problems."""
    if not isinstance(data, Mapping):
        raise SpecError([f"deployment: got {type(data).__name__} {_short(data)} — expected a "
                         "mapping such as {name: digits, source_directory: ./code, "
                         "entry_script: score.py}"])
    problems: list[str] = []
    azureml = _is_azureml(data)
    own = _from_azureml(data, problems) if azureml else dict(data)
    if not azureml:
        own["model"] = _model_path(own.get("model"), problems) if "model" in own else None
        for key in data:
            if key in _REFUSED:
                problems.append(f"{key}: {_REFUSED[key]}")
            elif key not in _OWN_FIELDS:
                problems.append(_unknown(key, _OWN_FIELDS, "fields of a deployment"))
    name_problem = check_name("name", own.get("name"))
    if name_problem:
        problems.append(name_problem)
    settings = own.get("settings") or {}
    if not isinstance(settings, Mapping):
        problems.append(f"settings: got {_short(settings)} — expected a mapping of job "
                        f"settings such as {{mini_batch_size: 10}}")
        settings = {}
    settings = dict(settings)  # v2 names stay: parse_job_spec's messages name them
    for key in [k for k in settings if k not in _SETTINGS_NAMES]:
        problems.append(f"settings.{key}: {_MISPLACED[key]}" if key in _MISPLACED
                        else _unknown(f"settings.{key}", _SETTINGS_NAMES, "job settings"))
        del settings[key]
    description = _text(own, "description", problems)
    endpoint_name = _text(own, "endpoint_name", problems)
    tags = _tags(own, problems)
    relabel: dict[str, str] = {}
    if azureml:
        relabel = {**_RELABEL, "node_count:": "resources.instance_count:"}
    spec = _validated_spec(own, settings, problems, relabel)
    if spec is not None and (spec.entry_script is None or spec.source_directory is None):
        problems.append("code_configuration: missing — a deployment needs its scoring script "
                        "(code_configuration: {code, scoring_script}); MLflow models without "
                        "a script can be scored by a job spec with model and no entry_script")
    if problems or spec is None or spec.entry_script is None or spec.source_directory is None:
        raise SpecError(list(dict.fromkeys(problems)))
    record = spec.to_record()
    return Deployment(
        name=spec.name, source_directory=spec.source_directory, entry_script=spec.entry_script,
        model=record["model"], output=spec.output if own.get("output") else None,
        settings={k: record[k] for k in _SETTINGS_FIELDS}, description=description,
        endpoint_name=endpoint_name, tags=tags)


def _validated_spec(own: Mapping[str, Any], settings: Mapping[str, Any], problems: list[str],
                    relabel: Mapping[str, str]) -> JobSpec | None:
    """Build a JobSpec with placeholder inputs (and output) to validate code and settings."""
    name = own.get("name")
    candidate = {**settings, "inputs": "placeholder/inputs",
                 # an invalid name is reported once, by check_name
                 "name": name if isinstance(name, str) and NAME_RE.match(name) else "placeholder",
                 "output": own.get("output") or "placeholder/out"}
    candidate.update({k: own[k] for k in _CODE_FIELDS if own.get(k) is not None})
    try:
        return parse_job_spec(candidate)
    except SpecError as exc:
        for message in exc.problems:
            old = next((o for o in relabel if message.startswith(o)), "")
            problems.append(relabel[old] + message[len(old):] if old else message)
    return None


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
