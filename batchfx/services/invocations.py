"""Turning an invocation target (a deployment or a pipeline) into a job spec.

Every trigger (HTTP, schedule, blob drop) calls :func:`job_spec_for` and hands the result
to ``start_job``. Targets::

    {"deployment": NAME, "version"?: N, "inputs": PATH | {path, type, glob},
     "output"?: PATH, "parameters"?: {..}, "settings"?: {..}}
    {"pipeline": NAME, "version"?: N, "parameters"?: {..}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from batchfx.core.deployments import INVOCATION_FIELDS, Deployment, normalise_settings
from batchfx.core.errors import SpecError
from batchfx.core.pipelines import render, validate_assignments
from batchfx.core.spec import V2_ALIASES, parse_job_spec
from batchfx.services.registry import get_deployment, get_pipeline
from batchfx.storage import Storage

__all__ = ["AML_SETTINGS", "PARAMETER_ENV_PREFIX", "job_spec_for", "split_aml_settings"]

PARAMETER_ENV_PREFIX = "BATCHFX_PARAM_"
_DEPLOYMENT_KEYS = ("deployment", "version", "inputs", "output", "parameters", "settings")
_PIPELINE_KEYS = ("pipeline", "version", "parameters")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOT_SETTINGS = (*INVOCATION_FIELDS, "source_directory", "entry_script", "model")


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _version(target: Mapping[str, Any], problems: list[str]) -> int | None:
    version = target.get("version")
    if version is None:
        return None
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append(f"version: got {_short(version)} — expected a version number ≥ 1, or "
                        "leave it out for the latest")
        return None
    return version


def _literal_parameters(given: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """A deployment's parameters: names become ``--NAME`` and ``BATCHFX_PARAM_NAME``."""
    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for name, value in given.items():
        if not isinstance(name, str) or not _IDENT.match(name):
            problems.append(f"parameters: got name {_short(name)} — expected letters, digits "
                            "and '_', not starting with a digit, e.g. top_k")
        elif name.upper() in seen:
            problems.append(f"parameters: {seen[name.upper()]!r} and {name!r} give the same "
                            f"environment variable {PARAMETER_ENV_PREFIX}{name.upper()}; "
                            "keep one")
        elif not isinstance(value, str | int | float):
            problems.append(f"parameters.{name}: got {_short(value)} — expected a string, "
                            "number or boolean")
        else:
            seen[name.upper()] = name
            out[name] = value
    return out


def _settings(given: object, problems: list[str]) -> dict[str, Any]:
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        problems.append(f"settings: got {_short(given)} — expected a mapping of job settings "
                        "such as {mini_batch_size: 5}")
        return {}
    settings = normalise_settings(given)
    for key in [k for k in settings if k in _NOT_SETTINGS]:
        where = "at the top level of the invocation" if key in INVOCATION_FIELDS \
            else "in the deployment (register a new version)"
        problems.append(f"settings.{key}: cannot be overridden here; give it {where}")
        del settings[key]
    return settings


def default_output(storage: Storage, deployment: Deployment) -> str:
    """Where a deployment that names no output writes: ``<outputs container>/<endpoint>/
    <deployment>`` (the job adds ``/<job id>``), or ``<outputs container>/<deployment>``
    without an endpoint."""
    folders = [deployment.endpoint_name, deployment.name] if deployment.endpoint_name \
        else [deployment.name]
    return "/".join([storage.settings.outputs_container, *folders])


def _refuse_unknown(target: Mapping[str, Any], allowed: tuple[str, ...]) -> list[str]:
    return [f"{k}: unknown field of a {allowed[0]} target — allowed: {', '.join(allowed)}"
            for k in target if k not in allowed]


def _deployment_spec(storage: Storage, target: Mapping[str, Any], extra: Mapping[str, Any],
                     job_name: str | None = None) -> dict[str, Any]:
    problems = _refuse_unknown(target, _DEPLOYMENT_KEYS)
    version = _version(target, problems)
    given = target.get("parameters")
    if given is not None and not isinstance(given, Mapping):
        problems.append(f"parameters: got {_short(given)} — expected a mapping such as "
                        "{top_k: 5}")
        given = None
    parameters = _literal_parameters({**(given or {}), **extra}, problems)
    if target.get("inputs") in (None, "", {}):
        problems.append("inputs: missing — give the folder to score, as container/prefix in "
                        "the app's storage or {path, type, glob}")
    if problems:
        raise SpecError(problems)
    # Placeholders in a target (schedules, blob drops) are filled from its parameters.
    fields = render({k: target.get(k) for k in ("inputs", "output", "settings")}, parameters)
    overrides = _settings(fields["settings"], problems)
    if problems:
        raise SpecError(problems)
    deployment = get_deployment(storage, str(target["deployment"]), version).deployment
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
        base["arguments"] += [f"--{name}", _text(value)]
        base["environment_variables"][f"{PARAMETER_ENV_PREFIX}{name.upper()}"] = _text(value)
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
    problems = _refuse_unknown(target, _PIPELINE_KEYS)
    version = _version(target, problems)
    given = target.get("parameters") or {}
    if not isinstance(given, Mapping):
        problems.append(f"parameters: got {_short(given)} — expected a mapping such as "
                        "{date: '2024-05-01'}")
        given = {}
    if problems:
        raise SpecError(problems)
    pipeline = get_pipeline(storage, str(target["pipeline"]), version).pipeline
    assigned, aml = split_aml_settings(pipeline.parameters, {**given, **extra})
    values = validate_assignments(pipeline.parameters, assigned)
    if pipeline.job is not None:
        job = render({"name": pipeline.name, **pipeline.job}, values)
        return parse_job_spec(_override(job, aml)).to_record()
    deployment_target = {
        "deployment": pipeline.deployment, "version": pipeline.deployment_version,
        "inputs": render(pipeline.inputs, values), "output": render(pipeline.output, values),
        "settings": {**render(pipeline.settings, values), **aml}, "parameters": values}
    return _deployment_spec(storage, deployment_target, {}, job_name=pipeline.name)


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
        raise SpecError([f"target: got {_short(target)} — expected {{deployment: NAME, "
                         "inputs: PATH}} or {pipeline: NAME, parameters: {...}}"])
    kinds = [k for k in ("deployment", "pipeline") if k in target]
    if len(kinds) != 1:
        raise SpecError(["target: give exactly one of deployment (a registered deployment's "
                         "name) or pipeline (a published pipeline's name)"])
    name = target[kinds[0]]
    if not isinstance(name, str) or not name:
        raise SpecError([f"{kinds[0]}: got {_short(name)} — expected the name of a registered "
                         f"{kinds[0]}"])
    extra = dict(assignments or {})
    if kinds[0] == "deployment":
        return _deployment_spec(storage, target, extra)
    return _pipeline_spec(storage, target, extra)
