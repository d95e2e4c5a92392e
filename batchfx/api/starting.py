"""Starting a job from any trigger: record it (idempotently), then start its orchestrator."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from batchfx.api import context as app_context
from batchfx.core.records import JobRecord, JobState
from batchfx.services.jobs import submit_job, submit_job_once
from batchfx.storage import Storage

__all__ = ["ORCHESTRATOR", "start_job"]

logger = logging.getLogger(__name__)

ORCHESTRATOR = "watch_job"


async def start_job(
    client: df.DurableOrchestrationClient,
    storage: Storage,
    spec: Any,
    *,
    client_request_id: str = "",
    tags: dict[str, str] | None = None,
) -> tuple[JobRecord, bool]:
    """Submit ``spec`` and start its orchestrator (instance id = job id); (job, created).

    With a client request id a repeated call returns the first job; its orchestrator is
    started again only while the job is still queued (a first call that stopped early).
    """
    if client_request_id:
        job, created = submit_job_once(storage, spec, client_request_id=client_request_id,
                                       tags=tags)
    else:
        job, created = submit_job(storage, spec, tags=tags), True
    if created or job.state is JobState.QUEUED:
        poll = app_context.settings().poll_interval_s
        await client.start_new(ORCHESTRATOR, instance_id=job.job_id,
                               client_input={"job_id": job.job_id, "poll_s": poll})
    else:
        logger.info("job %s: request %r seen before; not started again", job.job_id,
                    client_request_id)
    return job, created
