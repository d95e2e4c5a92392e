"""Blob-drop trigger (Event Grid source) and ``GET /api/drops`` (what became of each drop)."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from batchfx.api import context as app_context
from batchfx.api.starting import start_job
from batchfx.core.records import JobRecord
from batchfx.services.blob_drops import etag_from_properties, handle_drop, list_drops

bp = df.Blueprint()
logger = logging.getLogger(__name__)


# The name infra/ subscribes Event Grid to (blobDropFunctionName). The setting in the path
# must exist as an app setting: the host resolves it before batchfx's defaults apply.
@bp.function_name("submit_from_blob_drop")
@bp.blob_trigger(arg_name="blob", path="%BATCHFX_INBOX_CONTAINER%/{name}",
                 connection="AzureWebJobsStorage", source=func.BlobSource.EVENT_GRID)
@bp.durable_client_input(client_name="client")
async def submit_from_blob_drop(blob: func.InputStream,
                                client: df.DurableOrchestrationClient) -> None:
    """A ``_SUCCESS`` marker or a job file in the inbox submits its deployment's job."""
    storage = app_context.storage()

    async def start(spec: dict[str, Any], *, client_request_id: str, tags: dict[str, str]
                    ) -> tuple[JobRecord, bool]:
        return await start_job(client, storage, spec, client_request_id=client_request_id,
                               tags=tags)

    # blob.name is container/blob. Without an ETag in the trigger's properties handle_drop
    # reads it (one listing call).
    etag = etag_from_properties(getattr(blob, "blob_properties", None))
    await handle_drop(storage, start, blob.name or "", etag)


@bp.route(route="drops", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_drops_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/drops: recently handled drops (state, job id, reason), newest first."""
    raw = req.params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        return func.HttpResponse(
            json.dumps({"error": f"limit: got {raw!r} — expected a whole number from 1 "
                                 "to 1000"}),
            status_code=400, mimetype="application/json")
    drops = list_drops(app_context.storage(), limit=int(raw))
    return func.HttpResponse(json.dumps({"drops": [d.view() for d in drops]}, indent=2),
                             status_code=200, mimetype="application/json")
