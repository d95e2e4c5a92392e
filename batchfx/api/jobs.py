"""HTTP functions: submit, get, list and cancel jobs (function-level keys)."""

from __future__ import annotations

import json
import logging

import azure.durable_functions as df
import azure.functions as func

from batchfx.api import context as app_context
from batchfx.api.responses import json_response, problem
from batchfx.api.starting import start_job
from batchfx.core.errors import JobNotFoundError, JobStateError, SpecError
from batchfx.services.jobs import cancel_job, get_job, job_progress, job_view, list_jobs

bp = df.Blueprint()
logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024




@bp.route(route="jobs", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def submit_job_http(req: func.HttpRequest, client: df.DurableOrchestrationClient
                          ) -> func.HttpResponse:
    """POST /api/jobs: validate and record a job, start its orchestrator, answer 202."""
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        return problem(413, f"request body is {len(body)} bytes; at most {MAX_BODY_BYTES}")
    try:
        spec = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return problem(400, f"request body is not valid JSON: {exc}")
    except RecursionError:
        return problem(400, "request body is nested too deeply to read")
    request_id = req.headers.get("x-ms-client-request-id", "")
    if len(request_id) > 200:
        return problem(400, "x-ms-client-request-id: at most 200 characters")
    try:
        job, created = await start_job(client, app_context.storage(), spec,
                                       client_request_id=request_id)
    except SpecError as exc:
        return problem(400, "invalid job spec", problems=exc.problems)
    status_url = req.url.split("?")[0].rstrip("/") + f"/{job.job_id}"
    logger.info("job %s: accepted", job.job_id)
    return func.HttpResponse(
        json.dumps({"id": job.job_id, "state": job.state.value, "status_url": status_url,
                    "output": job.output_location, "created": created}, indent=2),
        status_code=202, mimetype="application/json", headers={"Location": status_url})


@bp.route(route="jobs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_jobs_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/jobs: recent jobs, newest first."""
    raw = req.params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        return problem(400, f"limit: got {raw!r} — expected a whole number from 1 to 1000")
    jobs = list_jobs(app_context.storage(), limit=int(raw))
    return json_response(200, {"jobs": [job_view(j, None) for j in jobs]})


@bp.route(route="jobs/{job_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_job_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/jobs/{id}: state, counts, throughput, ETA and output location."""
    storage = app_context.storage()
    job_id = req.route_params.get("job_id", "")
    try:
        job = get_job(storage, job_id)
    except JobNotFoundError as exc:
        return problem(404, str(exc))
    ended = job.state.is_final and job.outcome.final  # its counts are kept with it
    return json_response(200, job_view(job, None if ended else job_progress(storage, job)))


@bp.route(route="jobs/{job_id}/cancel", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def cancel_job_http(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/jobs/{id}/cancel: stop a job that has not ended."""
    storage = app_context.storage()
    job_id = req.route_params.get("job_id", "")
    try:
        job = cancel_job(storage, job_id)
    except JobNotFoundError as exc:
        return problem(404, str(exc))
    except JobStateError as exc:
        return problem(409, str(exc))
    return json_response(200, job_view(job, None))
