"""HTTP functions: registered models (register, list, show).

``POST /api/models`` ``{name, path, description?}`` registers the folder (or file) at
``path`` in the app's storage as the model's next version (``batchfx model create`` uploads
a local folder first); jobs, deployments and pipelines name it as ``name:version``,
``azureml:name:version`` or ``name@latest``.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from batchfx.api import context as app_context
from batchfx.api.deployments import _BadRequest, _body, _version
from batchfx.api.responses import json_response, problem
from batchfx.core.errors import NotRegisteredError, SpecError
from batchfx.services.registry import get_model, list_models, register_model

bp = df.Blueprint()
_FUNCTION = func.AuthLevel.FUNCTION
_FIELDS = ("name", "path", "description")


@bp.route(route="models", methods=["POST"], auth_level=_FUNCTION)
def register_model_http(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/models: a new version (201), or 200 with the latest when it is the same."""
    try:
        body = _body(req)
        unknown = [f"{k}: unknown field — allowed fields are: {', '.join(_FIELDS)}"
                   for k in body if k not in _FIELDS]
        if unknown:
            raise SpecError(unknown)
        stored, created = register_model(app_context.storage(), body.get("name", ""),
                                         body.get("path", ""), body.get("description") or "")
    except _BadRequest as exc:
        return exc.response
    except SpecError as exc:
        return problem(400, "invalid model", problems=exc.problems)
    return json_response(201 if created else 200, {**stored.view(), "registered": created})


@bp.route(route="models", methods=["GET"], auth_level=_FUNCTION)
def list_models_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/models: the latest version of each model."""
    return json_response(200, {"models": [m.view() for m in list_models(app_context.storage())]})


@bp.route(route="models/{name}", methods=["GET"], auth_level=_FUNCTION)
def get_model_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/models/{name}[?version=N]: one model version."""
    try:
        found = get_model(app_context.storage(), req.route_params.get("name", ""),
                          _version(req))
    except _BadRequest as exc:
        return exc.response
    except NotRegisteredError as exc:
        return problem(404, str(exc))
    return json_response(200, found.view())
