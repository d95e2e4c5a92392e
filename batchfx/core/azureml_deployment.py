"""An Azure ML v2 batch deployment YAML (``code_configuration``, ``resources``, ``settings``)
checked by pydantic models and read into batchfx's own deployment format.

Each part is a model (:class:`AzureMLDeployment`, :class:`CodeConfiguration`,
:class:`Resources`, and :class:`ModelAsset` for a ``model:`` given inline, which batchfx's own
format takes too); their problems are worded by
:func:`~batchfx.core.spec_fields.problem_messages`. What they check and what batchfx reads
from them are kept apart so that a document with problems is still read through, and the
deployment's own checks (name, settings as a job spec) report theirs with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from batchfx.core.spec_fields import Problems, problem_messages, short, unknown_field

__all__ = [
    "AZUREML_FIELDS",
    "LEGACY_SETTINGS",
    "METADATA",
    "REFUSED",
    "AzureMLDeployment",
    "CodeConfiguration",
    "ModelAsset",
    "Resources",
    "from_azureml",
    "is_azureml",
    "model_path",
]

METADATA = ("$schema", "name", "description", "tags", "endpoint_name")
AZUREML_FIELDS = (*METADATA, "type", "model", "code_configuration", "resources", "settings",
                  "environment", "compute")
# Settings older Azure ML YAMLs give at the top level instead of under settings:.
LEGACY_SETTINGS = ("mini_batch_size", "output_action", "output_file_name", "retry_settings",
                   "error_threshold", "logging_level", "environment_variables",
                   "max_concurrency_per_instance")
REFUSED = {
    "properties": "not supported — batchfx has no deployment properties; put job settings "
                  "under settings: and remove properties",
    "job_definition": "not supported — pipeline component deployments are not; publish a "
                      "batchfx pipeline (POST /api/pipelines) instead and remove job_definition",
    "component": "not supported — pipeline component deployments are not; publish a batchfx "
                 "pipeline (POST /api/pipelines) instead and remove component",
}
_HINTS = ("code_configuration", "endpoint_name", "type", "resources", "$schema")
_MODEL_KEYS = ("path", "name", "version", "description", "tags", "type")
_CODE_KEYS = ("code", "scoring_script")
_EXPECTED = {
    "type": "only model deployments are supported; publish a batchfx pipeline for anything "
            "else",
    "model.type": "expected custom_model or mlflow_model (a folder of files)",
    "resources": "expected {instance_count: 2}",
}
_PATH_MISSING = ("model.path: missing — give the model's folder, e.g. path: ./model, or a "
                 "registered model as model: azureml:name:version")
_NO_SCRIPT = ("batchfx needs a scoring script: code_configuration: {code: ./code, "
              "scoring_script: score.py}")
_ABSENT: Any = object()  # a top-level setting not given (None may be given)


class ModelAsset(BaseModel):
    """A model given inline, as Azure ML writes it: a folder (``path``), a registered model
    (``name`` and ``version``), or a folder named for Model.get_model_path (``path``, ``name``);
    the name and version are checked with the job spec the deployment makes."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: Any = None
    name: Any = None
    version: Any = None
    description: Any = None
    tags: Any = None
    type: Literal["custom_model", "mlflow_model"] = "custom_model"


def _unknown(path: str) -> str:
    """A key not allowed, at the top level or under ``model``, ``code_configuration`` or
    ``resources`` (keys Azure ML has that batchfx refuses say why)."""
    if path in REFUSED:
        return f"{path}: {REFUSED[path]}"
    if path == "resources.instance_type":
        return f"{path}: not supported — batchfx runs on the Functions app's instances; remove it"
    parent = path.rpartition(".")[0]
    allowed = {"model": _MODEL_KEYS, "code_configuration": _CODE_KEYS,
               "resources": ("instance_count",)}
    if parent in allowed:
        return unknown_field(path, allowed[parent], fold_case=False)
    return unknown_field(path, AZUREML_FIELDS, "fields of an Azure ML batch deployment",
                         fold_case=False)


def model_path(value: object) -> tuple[object, list[str]]:
    """An Azure ML ``model`` (a string, or ``{path, name, version…}``) as batchfx names it — a
    folder path, a registered model reference (``azureml:name:version`` is kept as it is), or
    ``{path, name, version}`` — and the problems of a mapping (:class:`ModelAsset`)."""
    if not isinstance(value, Mapping):
        return value, []
    problems: list[str] = []
    try:
        ModelAsset.model_validate(dict(value))
    except pydantic.ValidationError as exc:
        problems = problem_messages(exc, unknown=_unknown, expected=_EXPECTED, prefix="model",
                                    unknown_first=True)
    if "path" in value and "name" in value:  # a folder named for Model.get_model_path
        return {k: value[k] for k in ("path", "name", "version") if k in value}, problems
    if "path" in value:
        return value.get("path"), problems
    if "name" in value and "version" in value:
        return f"{value['name']}:{value['version']}", problems
    return None, [*problems, _PATH_MISSING]


def _model(value: Any) -> Any:
    problems = model_path(value)[1]
    if problems:
        raise Problems(problems)
    return value


def registry_reference(field_name: str, value: object) -> str | None:
    """The problem with a code folder given as an Azure ML registry reference, or None."""
    if isinstance(value, str) and value.lower().startswith("azureml:"):
        return (f"{field_name}: {value!r} is an Azure ML registry reference; give a folder "
                "path (a local folder, or container/prefix in the app's storage)")
    return None


def _folder(value: Any) -> Any:
    problem = registry_reference("code_configuration.code", value)
    if problem:
        raise Problems([problem])
    return value


class CodeConfiguration(BaseModel):
    """Where the scoring script is: ``code`` (a folder, not a registry reference) and
    ``scoring_script`` in it (checked with the job spec the deployment makes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Annotated[Any, AfterValidator(_folder)] = None
    scoring_script: Any = None


def _code_configuration(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise ValueError(_NO_SCRIPT)
    try:
        return CodeConfiguration.model_validate(dict(value))
    except pydantic.ValidationError as exc:  # keys not allowed first, as for model:
        raise Problems(problem_messages(exc, unknown=_unknown, prefix="code_configuration",
                                        unknown_first=True)) from None


class Resources(BaseModel):
    """``instance_count`` (the job's node_count); instance types are the Functions app's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_count: Any = None


def _given_once(value: Any, info: pydantic.ValidationInfo) -> Any:
    """A setting given both at the top level and under settings must be given alike."""
    nested = value if isinstance(value, Mapping) else {}
    legacy = {k: info.data[k] for k in LEGACY_SETTINGS if info.data.get(k, _ABSENT) is not _ABSENT}
    problems = [f"{key}: given at the top level ({short(legacy[key])}) and under settings "
                f"({short(nested[key])}) — give it once, under settings"
                for key in sorted(set(legacy) & set(nested)) if legacy[key] != nested[key]]
    if problems:
        raise Problems(problems)
    return value


class AzureMLDeployment(BaseModel):
    """An Azure ML v2 batch deployment, as its YAML gives it; the name, the code, the model's
    name and version, and the settings are checked by the deployment read from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Any = Field(None, alias="$schema")
    name: Any = None
    description: Any = None
    tags: Any = None
    endpoint_name: Any = None
    type: Literal["model"] = "model"
    model: Annotated[Any, BeforeValidator(_model)] = None
    code_configuration: Annotated[CodeConfiguration, BeforeValidator(_code_configuration)] = (
        Field(None, validate_default=True))
    resources: Resources = Field(default_factory=Resources)
    # Accepted and reported as not applied (the job's ignored_settings), as Azure ML users
    # give them: where and with what packages a job runs is the app's.
    environment: Any = None
    compute: Any = None
    mini_batch_size: Any = _ABSENT
    output_action: Any = _ABSENT
    output_file_name: Any = _ABSENT
    retry_settings: Any = _ABSENT
    error_threshold: Any = _ABSENT
    logging_level: Any = _ABSENT
    environment_variables: Any = _ABSENT
    max_concurrency_per_instance: Any = _ABSENT
    settings: Annotated[Any, AfterValidator(_given_once)] = Field(None, validate_default=True)


def is_azureml(data: Mapping[str, Any]) -> bool:
    """Whether a deployment document is an Azure ML YAML rather than batchfx's own format."""
    own = "source_directory" in data or "entry_script" in data
    return not own and any(key in data for key in _HINTS)


def from_azureml(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The deployment in batchfx's own format, and the problems of the Azure ML document."""
    problems: list[str] = []
    try:
        AzureMLDeployment.model_validate({str(k): v for k, v in data.items()})
    except pydantic.ValidationError as exc:
        problems = problem_messages(exc, unknown=_unknown, expected=_EXPECTED)
    own: dict[str, Any] = {k: data[k] for k in METADATA if k in data}
    if "model" in data:
        own["model"] = model_path(data["model"])[0]
    code = data.get("code_configuration")
    code = code if isinstance(code, Mapping) else {}
    reference = registry_reference("code_configuration.code", code.get("code"))
    own["source_directory"] = None if reference else code.get("code")
    own["entry_script"] = code.get("scoring_script")
    settings: dict[str, Any] = {}
    if data.get("environment") is not None:
        settings["environment"] = data["environment"]
    if data.get("compute") is not None:
        settings["compute_target"] = data["compute"]
    resources = data.get("resources", {})
    if isinstance(resources, Mapping) and "instance_count" in resources:
        settings["node_count"] = resources["instance_count"]
    legacy = {k: data[k] for k in LEGACY_SETTINGS if k in data}
    block = data.get("settings", {})
    own["settings"] = {**settings, **legacy, **block} if isinstance(block, Mapping) else block
    return own, problems
