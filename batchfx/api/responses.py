"""The HTTP functions' answers: JSON bodies, and problems as ``{"error": …}``."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

__all__ = ["json_response", "problem"]


def json_response(status: int, body: Any,
                  headers: dict[str, str] | None = None) -> func.HttpResponse:
    """``body`` as indented JSON with ``status`` (and ``headers``)."""
    return func.HttpResponse(json.dumps(body, indent=2), status_code=status,
                             mimetype="application/json", headers=headers)


def problem(status: int, message: str, **extra: Any) -> func.HttpResponse:
    """A failed request: what was wrong, and any fields that help to fix it."""
    return json_response(status, {"error": message, **extra})
