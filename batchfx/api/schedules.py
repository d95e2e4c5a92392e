"""Schedules: HTTP functions to manage them, and the timer that fires them every minute."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from batchfx.api import context as app_context
from batchfx.api.responses import json_response, problem
from batchfx.api.starting import start_job
from batchfx.core.errors import JobNotFoundError
from batchfx.core.records import JobRecord
from batchfx.core.recurrence import ScheduleError
from batchfx.services.jobs import get_job
from batchfx.services.schedules import (
    ScheduleExistsError,
    ScheduleNotFoundError,
    ScheduleRecord,
    create_schedule,
    delete_schedule,
    fire_due_schedules,
    get_schedule,
    list_schedules,
    schedule_view,
    set_enabled,
)
from batchfx.storage import Storage

bp = df.Blueprint()
logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
# NCRONTAB with seconds, as the Functions host reads it: at second 0 of every minute.
TICK = "0 * * * * *"




def _now() -> datetime:
    return datetime.now(UTC)


def _last_job(storage: Storage, record: ScheduleRecord) -> JobRecord | None:
    if not record.last_job_id:
        return None
    try:
        return get_job(storage, record.last_job_id)
    except JobNotFoundError:
        return None


@bp.route(route="schedules", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def create_schedule_http(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/schedules: validate and store a schedule, answer 201."""
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        return problem(413, f"request body is {len(body)} bytes; at most {MAX_BODY_BYTES}")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return problem(400, f"request body is not valid JSON: {exc}")
    except RecursionError:
        return problem(400, "request body is nested too deeply to read")
    try:
        record = create_schedule(app_context.storage(), data)
    except ScheduleError as exc:
        return problem(400, "invalid schedule", problems=exc.problems)
    except ScheduleExistsError as exc:
        return problem(409, str(exc))
    location = req.url.split("?")[0].rstrip("/") + f"/{record.name}"
    return json_response(201, schedule_view(record, _now()), {"Location": location})


@bp.route(route="schedules", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_schedules_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/schedules: every schedule with its next due time."""
    now = _now()
    records = list_schedules(app_context.storage())
    return json_response(200, {"schedules": [schedule_view(r, now) for r in records]})


@bp.route(route="schedules/{name}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_schedule_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/schedules/{name}: the schedule, its next due time and its last job."""
    storage = app_context.storage()
    try:
        record = get_schedule(storage, req.route_params.get("name", ""))
    except ScheduleNotFoundError as exc:
        return problem(404, str(exc))
    return json_response(200, schedule_view(record, _now(), _last_job(storage, record)))


def _set_enabled(req: func.HttpRequest, enabled: bool) -> func.HttpResponse:
    try:
        record = set_enabled(app_context.storage(), req.route_params.get("name", ""), enabled)
    except ScheduleNotFoundError as exc:
        return problem(404, str(exc))
    return json_response(200, schedule_view(record, _now()))


@bp.route(route="schedules/{name}/enable", methods=["POST"],
          auth_level=func.AuthLevel.FUNCTION)
def enable_schedule_http(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/schedules/{name}/enable: fire again from the next due time on."""
    return _set_enabled(req, True)


@bp.route(route="schedules/{name}/disable", methods=["POST"],
          auth_level=func.AuthLevel.FUNCTION)
def disable_schedule_http(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/schedules/{name}/disable: stop firing (started jobs go on)."""
    return _set_enabled(req, False)


@bp.route(route="schedules/{name}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def delete_schedule_http(req: func.HttpRequest) -> func.HttpResponse:
    """DELETE /api/schedules/{name}: remove the schedule (its jobs stay)."""
    name = req.route_params.get("name", "")
    try:
        delete_schedule(app_context.storage(), name)
    except ScheduleNotFoundError as exc:
        return problem(404, str(exc))
    return json_response(200, {"name": name, "deleted": True})


@bp.timer_trigger(schedule=TICK, arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def fire_schedules(timer: func.TimerRequest, client: df.DurableOrchestrationClient
                         ) -> None:
    """Every minute: start the job of each enabled schedule's latest due time, once."""
    if timer.past_due:
        logger.warning("schedule timer is running late; missed due times are caught up once")
    storage = app_context.storage()

    async def start(spec: dict[str, Any], *, client_request_id: str, tags: dict[str, str]
                    ) -> tuple[JobRecord, bool]:
        return await start_job(client, storage, spec, client_request_id=client_request_id,
                               tags=tags)

    fired = await fire_due_schedules(storage, _now(), start)
    if fired:
        logger.info("schedule timer: %d due, %d failed", len(fired),
                    sum(1 for f in fired if f.error))
