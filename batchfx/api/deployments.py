"""HTTP functions: deployments and published pipelines (register, list, show, delete, run).

``POST /api/pipelines/{name}`` takes the body of Azure ML's published-pipeline endpoint
(``{ExperimentName, ParameterAssignments}``) and answers with ``Id``, as Azure Data
Factory's Machine Learning Execute Pipeline activity expects.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from batchfx.api import context as app_context
from batchfx.api.responses import json_response, problem
from batchfx.api.starting import start_job
from batchfx.core.deployments import parse_deployment
from batchfx.core.errors import SpecError
from batchfx.core.pipelines import parse_pipeline
from batchfx.core.records import JobRecord
from batchfx.services.invocations import job_spec_for, pipeline_run
from batchfx.services.registry import (
    NotRegisteredError,
    delete_deployment,
    delete_pipeline,
    get_deployment,
    get_pipeline,
    list_deployments,
    list_pipelines,
    publish_pipeline,
    register_deployment,
)

bp = df.Blueprint()
logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
_FUNCTION = func.AuthLevel.FUNCTION


class _BadRequest(Exception):
    def __init__(self, response: func.HttpResponse) -> None:
        self.response = response




def _body(req: func.HttpRequest, *, optional: bool = False) -> dict[str, Any]:
    raw = req.get_body()
    if len(raw) > MAX_BODY_BYTES:
        raise _BadRequest(problem(413, f"request body is {len(raw)} bytes; at most "
                                        f"{MAX_BODY_BYTES}"))
    if optional and not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BadRequest(problem(400, f"request body is not valid JSON: {exc}")) from None
    except RecursionError:
        raise _BadRequest(problem(400, "request body is nested too deeply to read")) from None
    if not isinstance(body, dict):
        raise _BadRequest(problem(400, f"request body: got {type(body).__name__} — expected "
                                        "a JSON object"))
    return body


def _request_id(req: func.HttpRequest) -> str:
    request_id = str(req.headers.get("x-ms-client-request-id", ""))
    if len(request_id) > 200:
        raise _BadRequest(problem(400, "x-ms-client-request-id: at most 200 characters"))
    return request_id


def _version(req: func.HttpRequest) -> int | None:
    raw = req.params.get("version")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise _BadRequest(problem(400, f"version: got {raw!r} — expected a number ≥ 1"))
    return int(raw)


def _job_url(req: func.HttpRequest, job_id: str) -> str:
    url = str(req.url).split("?")[0]
    return url[: url.find("/api/")] + f"/api/jobs/{job_id}"


def _accepted(req: func.HttpRequest, job: JobRecord, created: bool, **extra: Any
              ) -> func.HttpResponse:
    status_url = _job_url(req, job.job_id)
    body = {"id": job.job_id, "state": job.state.value, "status_url": status_url,
            "output": job.output_location, "created": created, **extra}
    return json_response(202, body, {"Location": status_url})


@bp.route(route="deployments", methods=["POST"], auth_level=_FUNCTION)
def register_deployment_http(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/deployments: register (201), or 200 with the same version when unchanged."""
    try:
        deployment = parse_deployment(_body(req))
        stored, created = register_deployment(app_context.storage(), deployment)
    except _BadRequest as exc:
        return exc.response
    except SpecError as exc:
        return problem(400, "invalid deployment", problems=exc.problems)
    return json_response(201 if created else 200, {**stored.view(), "registered": created})


@bp.route(route="deployments", methods=["GET"], auth_level=_FUNCTION)
def list_deployments_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/deployments: the latest version of each deployment."""
    return json_response(200, {"deployments": [d.view() for d in list_deployments(
        app_context.storage())]})


@bp.route(route="deployments/{name}", methods=["GET"], auth_level=_FUNCTION)
def get_deployment_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/deployments/{name}[?version=N]: one deployment version."""
    try:
        found = get_deployment(app_context.storage(), req.route_params.get("name", ""),
                               _version(req))
    except _BadRequest as exc:
        return exc.response
    except NotRegisteredError as exc:
        return problem(404, str(exc))
    return json_response(200, found.view())


@bp.route(route="deployments/{name}", methods=["DELETE"], auth_level=_FUNCTION)
def delete_deployment_http(req: func.HttpRequest) -> func.HttpResponse:
    """DELETE /api/deployments/{name}: mark it deleted; started jobs keep running."""
    try:
        found = delete_deployment(app_context.storage(), req.route_params.get("name", ""))
    except NotRegisteredError as exc:
        return problem(404, str(exc))
    return json_response(200, {"name": found.deployment.name, "version": found.version,
                       "deleted": True})


@bp.route(route="deployments/{name}/jobs", methods=["POST"], auth_level=_FUNCTION)
@bp.durable_client_input(client_name="client")
async def invoke_deployment_http(req: func.HttpRequest, client: df.DurableOrchestrationClient
                                 ) -> func.HttpResponse:
    """POST /api/deployments/{name}/jobs ``{inputs, output?, parameters?, settings?}``: 202."""
    name = req.route_params.get("name", "")
    try:
        body = _body(req)
        request_id = _request_id(req)
        if "deployment" in body or "pipeline" in body:
            return problem(400, "request body: the deployment is named in the URL; remove "
                                 "deployment/pipeline from the body")
        storage = app_context.storage()
        spec = job_spec_for(storage, {**body, "deployment": name})
        job, created = await start_job(client, storage, spec, client_request_id=request_id,
                                       tags={"deployment": name})
    except _BadRequest as exc:
        return exc.response
    except SpecError as exc:
        return problem(400, "invalid invocation", problems=exc.problems)
    except NotRegisteredError as exc:
        return problem(404, str(exc))
    logger.info("job %s: accepted for deployment %s", job.job_id, name)
    return _accepted(req, job, created)


@bp.route(route="pipelines", methods=["POST"], auth_level=_FUNCTION)
def publish_pipeline_http(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/pipelines: publish (201), or 200 with the same version when unchanged."""
    try:
        pipeline = parse_pipeline(_body(req))
        stored, created = publish_pipeline(app_context.storage(), pipeline)
    except _BadRequest as exc:
        return exc.response
    except SpecError as exc:
        return problem(400, "invalid pipeline", problems=exc.problems)
    except NotRegisteredError as exc:
        return problem(400, "invalid pipeline", problems=[f"deployment: {exc}"])
    endpoint = req.url.split("?")[0].rstrip("/") + f"/{stored.pipeline.name}"
    return json_response(201 if created else 200,
                 {**stored.view(), "published": created, "endpoint": endpoint})


@bp.route(route="pipelines", methods=["GET"], auth_level=_FUNCTION)
def list_pipelines_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/pipelines: the latest version of each pipeline."""
    pipelines = list_pipelines(app_context.storage())
    return json_response(200, {"pipelines": [p.view() for p in pipelines]})


@bp.route(route="pipelines/{name}", methods=["GET"], auth_level=_FUNCTION)
def get_pipeline_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/pipelines/{name}[?version=N]: one pipeline version."""
    try:
        found = get_pipeline(app_context.storage(), req.route_params.get("name", ""),
                             _version(req))
    except _BadRequest as exc:
        return exc.response
    except NotRegisteredError as exc:
        return problem(404, str(exc))
    return json_response(200, found.view())


@bp.route(route="pipelines/{name}", methods=["DELETE"], auth_level=_FUNCTION)
def delete_pipeline_http(req: func.HttpRequest) -> func.HttpResponse:
    """DELETE /api/pipelines/{name}: mark it deleted; started jobs keep running."""
    try:
        found = delete_pipeline(app_context.storage(), req.route_params.get("name", ""))
    except NotRegisteredError as exc:
        return problem(404, str(exc))
    return json_response(200, {"name": found.pipeline.name, "version": found.version,
                                "deleted": True})


@bp.route(route="pipelines/{name}", methods=["POST"], auth_level=_FUNCTION)
@bp.durable_client_input(client_name="client")
async def run_pipeline_http(req: func.HttpRequest, client: df.DurableOrchestrationClient
                            ) -> func.HttpResponse:
    """POST /api/pipelines/{name} ``{ExperimentName, ParameterAssignments}``: 202 with ``Id``."""
    name = req.route_params.get("name", "")
    try:
        body = _body(req, optional=True)
        request_id = _request_id(req)
        assignments, tags = pipeline_run(body, name)
        storage = app_context.storage()
        spec = job_spec_for(storage, {"pipeline": name}, assignments)
        job, created = await start_job(client, storage, spec, client_request_id=request_id,
                                       tags=tags)
    except _BadRequest as exc:
        return exc.response
    except SpecError as exc:
        return problem(400, "invalid pipeline run", problems=exc.problems)
    except NotRegisteredError as exc:
        return problem(404, str(exc))
    logger.info("job %s: accepted for pipeline %s (experiment %s)", job.job_id, name,
                tags["experiment"])
    return _accepted(req, job, created, Id=job.job_id, ExperimentName=tags["experiment"])
