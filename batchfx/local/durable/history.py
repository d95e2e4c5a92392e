"""Durable Task history events and orchestrator replies, as plain JSON dicts.

The Durable extension sends an out-of-process orchestrator the context JSON
``{"history": [...], "input": ..., "instanceId": ..., "upperSchemaVersion": ...}``, where
every history event is a PascalCase dict (``EventType``, ``EventId``, ``IsPlayed``,
``Timestamp`` plus per-type fields), and gets back the orchestrator state
``{"isDone", "actions": [[...]], "output", "error", "customStatus"}``. This module builds
the one and reads the other; it knows nothing of instances, stores or threads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any
from urllib.parse import unquote

# The SDK's own format (azure.durable_functions.constants.DATETIME_STRING_FORMAT).
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# The SDK appends this to the message of the exception it raises when user code failed.
OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
# ReplaySchema.V3: actions come back as one list (``[[a, b, ...]]``) with WhenAll/WhenAny
# as compound actions, as with the Durable extension 2.x.
UPPER_SCHEMA_VERSION = 2


class EventType(IntEnum):
    """The history event types the local runtime writes (HistoryEventType values)."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_RAISED = 15


class ActionType(IntEnum):
    """The action types an orchestrator can return (azure.durable_functions ActionType)."""

    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


# Actions for which DTFx hands out an event id from the execution's sequence counter.
ID_ACTIONS = frozenset(
    {ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY, ActionType.CREATE_TIMER}
)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """A UTC datetime in the SDK's wire format."""
    return moment.astimezone(UTC).strftime(DATETIME_FORMAT)


def parse_time(text: str) -> datetime:
    """Parse a time written by :func:`format_time` (or an ISO-8601 string)."""
    try:
        return datetime.strptime(text, DATETIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _event(kind: EventType, at: datetime, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "EventType": int(kind),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": format_time(at),
    }
    base.update(fields)
    return base


def orchestrator_started(at: datetime) -> dict[str, Any]:
    """Opens an episode; its Timestamp becomes ``context.current_utc_datetime``."""
    return _event(EventType.ORCHESTRATOR_STARTED, at)


def orchestrator_completed(at: datetime) -> dict[str, Any]:
    """Closes an episode."""
    return _event(EventType.ORCHESTRATOR_COMPLETED, at)


def execution_started(
    at: datetime, instance_id: str, execution_id: str, name: str, input_: str | None
) -> dict[str, Any]:
    """First event of an execution; ``input_`` is the JSON-encoded orchestration input."""
    return _event(
        EventType.EXECUTION_STARTED,
        at,
        Name=name,
        Version="",
        Input=input_,
        OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
        ParentInstance=None,
        Tags=None,
    )


def execution_completed(at: datetime, status: str, result: Any) -> dict[str, Any]:
    """Last event of an execution that completed, failed or continued as new."""
    return _event(
        EventType.EXECUTION_COMPLETED, at, OrchestrationStatus=status, Result=json.dumps(result)
    )


def execution_terminated(at: datetime, reason: str) -> dict[str, Any]:
    """Last event of a terminated execution."""
    return _event(EventType.EXECUTION_TERMINATED, at, Input=json.dumps(reason))


def task_scheduled(at: datetime, event_id: int, name: str, input_: str | None) -> dict[str, Any]:
    """An activity call; ``input_`` is the JSON string from the CallActivity action."""
    return _event(EventType.TASK_SCHEDULED, at, event_id, Name=name, Version="", Input=input_)


def task_completed(at: datetime, scheduled_id: int, result: str) -> dict[str, Any]:
    """An activity result; ``result`` is JSON-encoded, as the SDK decodes it."""
    return _event(EventType.TASK_COMPLETED, at, TaskScheduledId=scheduled_id, Result=result)


def task_failed(at: datetime, scheduled_id: int, reason: str, details: str) -> dict[str, Any]:
    """An activity failure; the SDK raises ``Exception(f"{Reason} \\n {Details}")``."""
    return _event(
        EventType.TASK_FAILED, at, TaskScheduledId=scheduled_id, Reason=reason, Details=details
    )


def timer_created(at: datetime, event_id: int, fire_at: str) -> dict[str, Any]:
    """A durable timer was created."""
    return _event(EventType.TIMER_CREATED, at, event_id, FireAt=fire_at)


def timer_fired(at: datetime, timer_id: int, fire_at: str) -> dict[str, Any]:
    """A durable timer fired."""
    return _event(EventType.TIMER_FIRED, at, TimerId=timer_id, FireAt=fire_at)


def event_raised(at: datetime, name: str, input_: str | None) -> dict[str, Any]:
    """An external event; ``input_`` is the JSON-encoded event data."""
    return _event(EventType.EVENT_RAISED, at, Name=name, Input=input_)


def context_json(
    instance_id: str, input_: str | None, history: list[dict[str, Any]], played: int
) -> str:
    """The orchestration-trigger payload; the first ``played`` events are marked IsPlayed."""
    events = [dict(e, IsPlayed=i < played) for i, e in enumerate(history)]
    return json.dumps(
        {
            "history": events,
            "input": input_,
            "instanceId": instance_id,
            "isReplaying": played > 0,
            "parentInstanceId": None,
            "upperSchemaVersion": UPPER_SCHEMA_VERSION,
        }
    )


def flatten_actions(actions: list[Any]) -> list[dict[str, Any]]:
    """The atomic actions in the order the SDK numbered their tasks.

    Lists (schema V1 groups) and WhenAll/WhenAny compound actions are opened in place, so
    the n-th id-taking action here is the n-th task id the SDK handed out for them.
    """
    flat: list[dict[str, Any]] = []
    for action in actions:
        if isinstance(action, list):
            flat.extend(flatten_actions(action))
        elif "compoundActions" in action:
            flat.extend(flatten_actions(action["compoundActions"]))
        else:
            flat.append(action)
    return flat


def read_state(reply: str) -> dict[str, Any]:
    """Parse the orchestrator state JSON the SDK returned."""
    state = json.loads(reply)
    if not isinstance(state, dict):
        raise ValueError(f"orchestrator reply is not a JSON object: {reply[:200]!r}")
    return state


def read_failure(exc: BaseException) -> tuple[str, dict[str, Any]]:
    """Split the SDK's failure exception into (error message, orchestrator state).

    The SDK raises ``Exception(f"{error}\\n\\n$OutOfProcData$:{state_json}")``; anything
    else (a bug outside the generator) has no state.
    """
    message = str(exc) or type(exc).__name__
    head, marker, tail = message.partition(OUT_OF_PROC_MARKER)
    if not marker:
        return f"{type(exc).__name__}: {message}", {}
    try:
        state = read_state(tail)
    except ValueError:
        state = {}
    error = state.get("error")
    return (error if isinstance(error, str) and error else head), state


# -- the extension's webhook JSON --------------------------------------------------------

WEBHOOK_ROOT = "/runtime/webhooks/durabletask"
# get_status answers 200 when done, 400 when failed/terminated, 202 while in progress.
STATUS_CODES = {"Completed": 200, "Failed": 400, "Terminated": 400, "Canceled": 400}


def webhook_parts(path: str, rpc_token: str) -> list[str] | None:
    """The URL path's parts after the public webhook root, or after the app's own RPC root
    (``/durabletask/<rpc_token>/``); None for any other path."""
    path = path.split("?", 1)[0]
    for root in (WEBHOOK_ROOT + "/", f"/durabletask/{rpc_token}/"):
        if path.startswith(root):
            return [unquote(p) for p in path[len(root):].split("/") if p]
    return None


def body_to_input(body: bytes) -> str | None:
    """The JSON-encoded input of a start/raiseEvent body.

    The Python client posts ``json=df_dumps(value)``, i.e. a JSON string holding JSON; the
    extension keeps that inner string. A raw JSON body (curl) is encoded as it stands.
    """
    if not body.strip():
        return None
    value = json.loads(body)
    return value if isinstance(value, str) else json.dumps(value)


def management_urls(base_url: str, task_hub: str, instance_id: str,
                    system_key: str = "") -> dict[str, str]:
    """The extension's instance management payload (``id`` plus its URLs, carrying the
    system key as ``code`` when the webhook needs one)."""
    instance = f"{base_url.rstrip('/')}{WEBHOOK_ROOT}/instances/{instance_id}"
    query = f"taskHub={task_hub}&connection=Storage" + (f"&code={system_key}"
                                                        if system_key else "")
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{instance}?{query}",
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{instance}?{query}",
        "restartPostUri": f"{instance}/restart?{query}",
        "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
    }


def client_binding(base_url: str, task_hub: str, rpc_token: str = "",
                   system_key: str = "") -> dict[str, Any]:
    """The ``durableClient`` binding data. rpcBaseUrl is the worker's own endpoint (the host
    serves it on localhost only; here under a path holding ``rpc_token``), the webhook root
    otherwise; the public webhook takes the system key."""
    root = f"{base_url.rstrip('/')}{WEBHOOK_ROOT}"
    rpc = f"{base_url.rstrip('/')}/durabletask/{rpc_token}/" if rpc_token else f"{root}/"
    create = f"{root}/orchestrators/{{functionName}}[/{{instanceId}}]"
    query = f"taskHub={task_hub}&connection=Storage"
    return {
        "taskHubName": task_hub,
        "creationUrls": {
            "createNewInstancePostUri": f"{create}?{query}",
            "createAndWaitOnNewInstancePostUri": (
                f"{create}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}"
                f"&{query}"
            ),
        },
        "managementUrls": management_urls(base_url, task_hub, "INSTANCEID", system_key),
        "baseUrl": root,
        "requiredQueryStringParameters": f"code={system_key}" if system_key else "",
        "rpcBaseUrl": rpc,
        "httpBaseUrl": "",
    }
