"""Turning an invocation target (a deployment or a pipeline) into a job spec.

Every trigger (HTTP, schedule, blob drop) calls :func:`job_spec_for` and hands the result
to ``start_job``. Targets::

    {"deployment": NAME, "version"?: N, "inputs": PATH | {path, type, glob},
     "output"?: PATH, "parameters"?: {..}, "settings"?: {..}}
    {"pipeline": NAME, "version"?: N, "parameters"?: {..}}

They are pydantic models (:class:`DeploymentTarget`, :class:`PipelineTarget`), as is the body
of Azure ML's published-pipeline endpoint (:class:`PipelineRunRequest`, read by
:func:`pipeline_run`); their problems are worded by
:func:`~batchfx.core.spec_fields.problem_messages`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from batchfx.core.deployments import INVOCATION_FIELDS, Deployment, normalise_settings
from batchfx.core.errors import SpecError
from batchfx.core.pipeline_parameters import parameter_text
from batchfx.core.pipelines import render, validate_assignments
from batchfx.core.spec import V2_ALIASES, parse_job_spec
from batchfx.core.spec_fields import Problems, problem_messages, short
from batchfx.services.registry import get_deployment, get_pipeline
from batchfx.storage import Storage

__all__ = ["AML_SETTINGS", "PARAMETER_ENV_PREFIX", "DeploymentTarget", "PipelineRunRequest",
           "PipelineTarget", "job_spec_for", "pipeline_run", "split_aml_settings"]

PARAMETER_ENV_PREFIX = "BATCHFX_PARAM_"
_DEPLOYMENT_KEYS = ("deployment", "version", "inputs", "output", "parameters", "settings")
_PIPELINE_KEYS = ("pipeline", "version", "parameters")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOT_SETTINGS = (*INVOCATION_FIELDS, "source_directory", "entry_script", "model")
_EXPECTED = {"version": "expected a version number ≥ 1, or leave it out for the latest"}
_T = TypeVar("_T", bound=BaseModel)


def _version(value: Any) -> Any:
    """A version given as text (a query string, a YAML file) is its number."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


# A registered version: a number ≥ 1, or None for the latest.
Version = Annotated[Annotated[int, Field(ge=1)] | None, BeforeValidator(_version)]


def _literal_parameters(value: Any, info: pydantic.ValidationInfo) -> Any:
    """A deployment's parameters, with the assignments (of a schedule or a blob drop, in the
    validation context) over them: names become ``--NAME`` and ``BATCHFX_PARAM_NAME``."""
    problems: list[str] = []
    if value is not None and not isinstance(value, Mapping):
        problems.append(f"parameters: got {short(value)} — expected a mapping such as "
                        "{top_k: 5}")
        value = None
    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for name, item in {**(value or {}), **(info.context or {}).get("assignments", {})}.items():
        if not isinstance(name, str) or not _IDENT.match(name):
            problems.append(f"parameters: got name {short(name)} — expected letters, digits "
                            "and '_', not starting with a digit, e.g. top_k")
        elif name.upper() in seen:
            problems.append(f"parameters: {seen[name.upper()]!r} and {name!r} give the same "
                            f"environment variable {PARAMETER_ENV_PREFIX}{name.upper()}; "
                            "keep one")
        elif not isinstance(item, str | int | float):
            problems.append(f"parameters.{name}: got {short(item)} — expected a string, "
                            "number or boolean")
        else:
            seen[name.upper()] = name
            out[name] = item
    if problems:
        raise Problems(problems)
    return out


def _inputs(value: Any) -> Any:
    if value in (None, "", {}):
        raise Problems(["inputs: missing — give the folder to score, as container/prefix in "
                        "the app's storage or {path, type, glob}"])
    return value


class DeploymentTarget(BaseModel):
    """A run of a deployment: ``{deployment, version?, inputs, output?, parameters?,
    settings?}``; ``inputs``, ``output`` and ``settings`` may hold ``${{parameters.NAME}}``
    placeholders (the settings are checked once they are filled: :data:`OVERRIDES`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    deployment: str
    version: Version = None
    parameters: Annotated[dict[str, Any], BeforeValidator(_literal_parameters)] = Field(
        default_factory=dict, validate_default=True)
    inputs: Annotated[Any, BeforeValidator(_inputs)] = Field(None, validate_default=True)
    output: Any = None
    settings: Any = None


def _overridable(value: Any) -> Any:
    """Job settings a run may override (v1 names): not the invocation's or the code's."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("expected a mapping of job settings such as {mini_batch_size: 5}")
    settings = normalise_settings(value)
    problems = []
    for key in [k for k in settings if k in _NOT_SETTINGS]:
        where = "at the top level of the invocation" if key in INVOCATION_FIELDS \
            else "in the deployment (register a new version)"
        problems.append(f"settings.{key}: cannot be overridden here; give it {where}")
    if problems:
        raise Problems(problems)
    return settings


# A deployment run's settings, once its placeholders are filled.
OVERRIDES = pydantic.TypeAdapter(Annotated[dict[str, Any], BeforeValidator(_overridable)],
                                 config=ConfigDict(strict=True))


def _mapping(value: Any) -> Any:
    if not isinstance(value or {}, Mapping):
        raise ValueError("expected a mapping such as {date: '2024-05-01'}")
    return dict(value or {})


class PipelineTarget(BaseModel):
    """A run of a published pipeline: ``{pipeline, version?, parameters?}`` (assignments of
    its declared parameters, checked against them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    pipeline: str
    version: Version = None
    parameters: Annotated[dict[str, Any], BeforeValidator(_mapping)] = Field(
        default_factory=dict)


def _target(model: type[_T], target: Mapping[str, Any],
            context: Mapping[str, Any] | None = None) -> _T:
    """``target`` validated as ``model``; SpecError lists one message per problem."""
    keys = _DEPLOYMENT_KEYS if model is DeploymentTarget else _PIPELINE_KEYS
    try:
        return model.model_validate(dict(target), context=context)
    except pydantic.ValidationError as exc:
        raise SpecError(problem_messages(
            exc, expected=_EXPECTED, unknown_first=True,
            unknown=lambda k: f"{k}: unknown field of a {keys[0]} target — allowed: "
                              f"{', '.join(keys)}")) from None


def default_output(storage: Storage, deployment: Deployment) -> str:
    """Where a deployment that names no output writes: ``<outputs container>/<endpoint>/
    <deployment>`` (the job adds ``/<job id>``), or ``<outputs container>/<deployment>``
    without an endpoint."""
    folders = [deployment.endpoint_name, deployment.name] if deployment.endpoint_name \
        else [deployment.name]
    return "/".join([storage.settings.outputs_container, *folders])


def _deployment_spec(storage: Storage, target: Mapping[str, Any], extra: Mapping[str, Any],
                     job_name: str | None = None) -> dict[str, Any]:
    run = _target(DeploymentTarget, target, {"assignments": extra})
    parameters = run.parameters
    # Placeholders in a target (schedules, blob drops) are filled from its parameters.
    fields = render({"inputs": run.inputs, "output": run.output, "settings": run.settings},
                    parameters)
    try:
        overrides = OVERRIDES.validate_python(fields["settings"])
    except pydantic.ValidationError as exc:
        raise SpecError(problem_messages(exc, unknown=str, prefix="settings")) from None
    deployment = get_deployment(storage, run.deployment, run.version).deployment
    settings = {**deployment.settings, **overrides}
    # As Azure ML writes a batch deployment's results to the workspace's default datastore
    # when a job names no output.
    output = fields["output"] or deployment.output or default_output(storage, deployment)
    base = parse_job_spec({
        **settings, "name": job_name or deployment.name,
        "source_directory": deployment.source_directory,
        "entry_script": deployment.entry_script, "model": deployment.model,
        "inputs": fields["inputs"], "output": output}).to_record()
    for name, value in parameters.items():
        # After the deployment's own arguments, so argparse's last-wins gives the parameter.
        text = parameter_text(value)
        base["arguments"] += [f"--{name}", text]
        base["environment_variables"][f"{PARAMETER_ENV_PREFIX}{name.upper()}"] = text
    return parse_job_spec(base).to_record()


# The pipeline parameters Azure ML gives every ParallelRunStep, which a pipeline run may
# assign without declaring them (ParameterAssignments {"aml_node_count": 4}).
AML_SETTINGS = {f"aml_{name}": name for name in (
    "mini_batch_size", "error_threshold", "allowed_failed_count", "allowed_failed_percent",
    "logging_level", "run_invocation_timeout", "run_max_try", "process_count_per_node",
    "node_count")}


def _aml_value(name: str, value: Any) -> Any:
    """Data Factory sends every value as text: numbers back to numbers."""
    if not isinstance(value, str) or name in ("logging_level",):
        return value
    text = value.strip()
    if name == "mini_batch_size":
        return int(text) if text.isdigit() else text
    try:
        return float(text) if name == "allowed_failed_percent" else int(text)
    except ValueError:
        return value  # the spec's own check names the field and the value


def split_aml_settings(declared: Mapping[str, Any], assignments: Mapping[str, Any]
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the pipeline's own parameters, job settings given as ``aml_*`` parameters); a
    pipeline that declares an ``aml_*`` parameter itself keeps it."""
    own = {k: v for k, v in assignments.items() if k in declared or k not in AML_SETTINGS}
    settings = {AML_SETTINGS[k]: _aml_value(AML_SETTINGS[k], v) for k, v in assignments.items()
                if k not in declared and k in AML_SETTINGS and v is not None}
    return own, settings


def _override(job: dict[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``job`` with ``settings`` (v1 names) replacing what it gives, by either name."""
    out = {**job, **settings}
    for v2, v1 in V2_ALIASES.items():
        if v1 in settings:
            out.pop(v2, None)
    retry = out.get("retry_settings")
    if isinstance(retry, Mapping):
        out["retry_settings"] = {k: v for k, v in retry.items()
                                 if not (k == "max_retries" and "run_max_try" in settings)
                                 and not (k == "timeout" and "run_invocation_timeout" in settings)}
    return out


def _pipeline_spec(storage: Storage, target: Mapping[str, Any], extra: Mapping[str, Any]
                   ) -> dict[str, Any]:
    run = _target(PipelineTarget, target)
    pipeline = get_pipeline(storage, run.pipeline, run.version).pipeline
    assigned, aml = split_aml_settings(pipeline.parameters, {**run.parameters, **extra})
    values = validate_assignments(pipeline.parameters, assigned)
    if pipeline.job is not None:
        job = render({"name": pipeline.name, **pipeline.job}, values)
        return parse_job_spec(_override(job, aml)).to_record()
    deployment_target = {
        "deployment": pipeline.deployment, "version": pipeline.deployment_version,
        "inputs": render(pipeline.inputs, values), "output": render(pipeline.output, values),
        "settings": {**render(pipeline.settings, values), **aml}, "parameters": values}
    return _deployment_spec(storage, deployment_target, {}, job_name=pipeline.name)


# The body of Azure ML's published-pipeline endpoint (Data Factory's Machine Learning Execute
# Pipeline activity sends it): these fields, and a spelling seen in the wild for one of them.
_RUN_FIELDS = ("ExperimentName", "ParameterAssignments", "DataPathAssignments",
               "DataSetDefinitionValueAssignments", "Description", "RunSource",
               "ContinueOnStepFailure", "ContinueRunOnStepFailure", "ParentRunId")
_NO_DATASETS = ("registered datasets are not available in batchfx — declare a string "
                "parameter for the data's path and pass it in ParameterAssignments, e.g. "
                "{\"input_path\": \"data/2024-05-01\"}, or in DataPathAssignments as "
                "{\"input_path\": {\"DataStoreName\": \"data\", \"RelativePath\": "
                "\"2024-05-01\"}}")
_DATA_PATH = '{"input_path": {"DataStoreName": "data", "RelativePath": "2024-05-01"}}'


def _no_datasets(field: str) -> BeforeValidator:
    def refuse(value: Any) -> Any:
        if value:
            raise Problems([f"{field}: {_NO_DATASETS}"])
        return value

    return BeforeValidator(refuse)


def _assignments(value: Any) -> Any:
    if not isinstance(value or {}, dict):
        raise Problems([f"ParameterAssignments: got {value!r:.60} — expected an object of "
                        "parameter name to value"])
    return value or {}


def _data_paths(value: Any) -> Any:
    """``{param: {DataStoreName, RelativePath}}`` as path parameters ``container/prefix`` (a
    datastore is a container of the app's storage account)."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise Problems([f"DataPathAssignments: got {value!r:.60} — expected an object such "
                        f"as {_DATA_PATH}"])
    out, problems = {}, []
    for name, given in value.items():
        store = given.get("DataStoreName") if isinstance(given, dict) else None
        relative = given.get("RelativePath", "") if isinstance(given, dict) else None
        if not isinstance(store, str) or not store or not isinstance(relative, str):
            problems.append(f"DataPathAssignments.{name}: got {given!r:.80} — expected "
                            "{\"DataStoreName\": CONTAINER, \"RelativePath\": PREFIX}, e.g. "
                            f"{_DATA_PATH}")
            continue
        out[str(name)] = "/".join(p for p in (store, relative.strip("/")) if p)
    if problems:
        raise Problems(problems)
    return out


def _experiment(value: Any, info: pydantic.ValidationInfo) -> Any:
    """The experiment named, else the pipeline's name (in the validation context)."""
    experiment = value or (info.context or {}).get("pipeline", "")
    if not isinstance(experiment, str) or len(experiment) > 256:
        raise Problems([f"ExperimentName: got {experiment!r:.60} — expected a string of at "
                        "most 256 characters"])
    return experiment


class PipelineRunRequest(BaseModel):
    """A published pipeline run as Azure ML's REST endpoint takes it: ``ExperimentName``,
    ``ParameterAssignments`` and ``DataPathAssignments`` (paths as parameters); registered
    datasets are refused, the other fields accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: Annotated[Any, _no_datasets("DataSetDefinitionValueAssignments")] = Field(
        None, alias="DataSetDefinitionValueAssignments")
    datasets_spelled: Annotated[Any, _no_datasets("DatasetDefinitionValueAssignments")] = (
        Field(None, alias="DatasetDefinitionValueAssignments"))
    parameter_assignments: Annotated[dict[str, Any], BeforeValidator(_assignments)] = Field(
        default_factory=dict, alias="ParameterAssignments")
    data_path_assignments: Annotated[dict[str, str], BeforeValidator(_data_paths)] = Field(
        default_factory=dict, alias="DataPathAssignments")
    experiment_name: Annotated[str, BeforeValidator(_experiment)] = Field(
        "", alias="ExperimentName", validate_default=True)
    description: Any = Field(None, alias="Description")
    run_source: Any = Field(None, alias="RunSource")
    continue_on_step_failure: Any = Field(None, alias="ContinueOnStepFailure")
    continue_run_on_step_failure: Any = Field(None, alias="ContinueRunOnStepFailure")
    parent_run_id: Any = Field(None, alias="ParentRunId")


def pipeline_run(body: Mapping[str, Any], pipeline: str
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    """(parameter assignments, job tags) from a published-pipeline request body; SpecError
    lists one message per problem."""
    try:
        run = PipelineRunRequest.model_validate(dict(body), context={"pipeline": pipeline})
    except pydantic.ValidationError as exc:
        raise SpecError(problem_messages(
            exc, unknown_first=True,
            unknown=lambda k: f"{k}: unknown field — allowed fields are: {', '.join(_RUN_FIELDS)}",
        )) from None
    tags = {"pipeline": pipeline, "experiment": run.experiment_name}
    if isinstance(run.parent_run_id, str) and run.parent_run_id:
        tags["parent_run_id"] = run.parent_run_id[:256]
    return {**run.parameter_assignments, **run.data_path_assignments}, tags


def job_spec_for(storage: Storage, target: Mapping[str, Any],
                 assignments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The job spec (a dict ready for ``start_job``) that runs ``target``.

    ``assignments`` (from a schedule or a blob drop) are merged over the target's own
    ``parameters``. A deployment target runs the deployment's code and settings over
    ``inputs``; its parameters reach the script as ``--NAME VALUE`` after the deployment's
    arguments and as ``BATCHFX_PARAM_<NAME>`` environment variables, and fill
    ``${{parameters.NAME}}`` placeholders in ``inputs``/``output``/``settings``; the job is
    named after the deployment; ``output`` is the target's, else the deployment's default
    (one of them must give it unless output_action is summary_only). A pipeline target checks
    its parameters against the declared ones, then renders the job template — or, for a
    deployment pipeline, its inputs template, and runs the deployment with every parameter
    value passed as above (the job is named after the pipeline).
    Raises SpecError for a bad target or bad parameters, NotRegisteredError for an unknown
    deployment or pipeline.
    """
    if not isinstance(target, Mapping):
        raise SpecError([f"target: got {short(target)} — expected {{deployment: NAME, "
                         "inputs: PATH}} or {pipeline: NAME, parameters: {...}}"])
    kinds = [k for k in ("deployment", "pipeline") if k in target]
    if len(kinds) != 1:
        raise SpecError(["target: give exactly one of deployment (a registered deployment's "
                         "name) or pipeline (a published pipeline's name)"])
    name = target[kinds[0]]
    if not isinstance(name, str) or not name:
        raise SpecError([f"{kinds[0]}: got {short(name)} — expected the name of a registered "
                         f"{kinds[0]}"])
    extra = dict(assignments or {})
    if kinds[0] == "deployment":
        return _deployment_spec(storage, target, extra)
    return _pipeline_spec(storage, target, extra)
