"""The local Durable runtime's instance records: how they change, and where they are kept.

One record (a JSON-able dict) per instance, overwritten on every change:

    instance_id, name, execution_id     who it is; execution_id changes on continue-as-new
    input                               the current execution's input, JSON-encoded (or None)
    runtime_status                      an OrchestrationRuntimeStatus name (Pending, Running…)
    output, custom_status               as the orchestrator returned them
    created_time, last_updated_time     ISO-8601 UTC
    history                             the current execution's history events
    next_event_id, action_ids           the execution's task-id counter; the id given to each
                                        action the orchestrator returned so far (None: no id)
    activities, timers                  scheduled and not yet delivered (re-run on resume)
    inbox                               entries ``{"event": ...}`` waiting to be delivered;
                                        ``solo`` ones go alone (see :func:`take_batch`)

The record functions below are pure bookkeeping; the runtime calls them under its lock.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from batchfx.core.errors import StorageError, StorageNotFoundError
from batchfx.local.durable import history as h
from batchfx.storage.blobs import BlobStore

__all__ = ["FINISHED_STATUSES", "BlobInstanceStore", "InstanceStore", "MemoryInstanceStore"]

Record = dict[str, Any]

# Every other status (Pending, Running, ContinuedAsNew, Suspended) is resumed on restart.
FINISHED_STATUSES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})


def is_unfinished(record: dict[str, Any]) -> bool:
    """Whether the runtime still has work to do for this record."""
    return record.get("runtime_status") not in FINISHED_STATUSES


class InstanceStore(Protocol):
    """Persistence for orchestration instance records."""

    def save(self, record: dict[str, Any]) -> None:
        """Create or overwrite the record of ``record["instance_id"]``."""

    def load(self, instance_id: str) -> dict[str, Any] | None:
        """The record of this instance, or None."""

    def list_unfinished(self) -> list[dict[str, Any]]:
        """Every record whose runtime status is not final."""

    def delete(self, instance_id: str) -> bool:
        """Remove the record; False if there was none."""


class MemoryInstanceStore:
    """Records kept as JSON strings in a dict, so no caller shares a mutable record."""

    def __init__(self) -> None:
        self._records: dict[str, str] = {}
        self._lock = threading.Lock()

    def save(self, record: dict[str, Any]) -> None:
        """Create or overwrite the record."""
        text = json.dumps(record)
        with self._lock:
            self._records[record["instance_id"]] = text

    def load(self, instance_id: str) -> dict[str, Any] | None:
        """The record, or None."""
        with self._lock:
            text = self._records.get(instance_id)
        return None if text is None else _decode(text)

    def list_unfinished(self) -> list[dict[str, Any]]:
        """Records still to be driven."""
        with self._lock:
            texts = list(self._records.values())
        return [r for r in map(_decode, texts) if is_unfinished(r)]

    def delete(self, instance_id: str) -> bool:
        """Remove the record."""
        with self._lock:
            return self._records.pop(instance_id, None) is not None


class BlobInstanceStore:
    """One JSON blob per instance, ``instances/{id}.json``, in a container made if missing."""

    PREFIX = "instances/"

    def __init__(self, blobs: BlobStore, container: str) -> None:
        self._blobs, self._container = blobs, container
        try:
            blobs.ensure_container(container)
        except StorageError as exc:
            raise StorageError(f"cannot create container {container!r} for durable "
                               f"instances: {exc}") from exc

    def _blob_name(self, instance_id: str) -> str:
        # Quoted so an id with '/' stays one blob; ordinary ids are unchanged.
        return f"{self.PREFIX}{quote(instance_id, safe='')}.json"

    def save(self, record: dict[str, Any]) -> None:
        """Upload the record, overwriting."""
        self._blobs.upload(self._container, self._blob_name(record["instance_id"]),
                           json.dumps(record).encode(),
                           metadata={"runtime_status": str(record.get("runtime_status"))})

    def load(self, instance_id: str) -> dict[str, Any] | None:
        """Download the record, or None when the blob is missing."""
        return self._download(self._blob_name(instance_id))

    def list_unfinished(self) -> list[dict[str, Any]]:
        """Download the records whose blob metadata does not say they are finished."""
        names = [name for name, metadata in self._blobs.list_metadata(self._container,
                                                                       self.PREFIX)
                 if metadata.get("runtime_status") not in FINISHED_STATUSES]
        records = (self._download(name) for name in names)
        return [r for r in records if r is not None and is_unfinished(r)]

    def delete(self, instance_id: str) -> bool:
        """Delete the blob; False if it did not exist."""
        return self._blobs.delete(self._container, self._blob_name(instance_id))

    def _download(self, name: str) -> dict[str, Any] | None:
        try:
            data = self._blobs.download(self._container, name)
        except StorageNotFoundError:
            return None
        return _decode(data)


def _decode(text: str | bytes) -> dict[str, Any]:
    record = json.loads(text)
    if not isinstance(record, dict):
        raise StorageError(f"durable instance record is not a JSON object: {str(text)[:100]}")
    return record


# -- the record ----------------------------------------------------------------------------


def new_record(instance_id: str, name: str, input_: str | None) -> Record:
    """A Pending instance of orchestrator ``name`` with a JSON-encoded input."""
    record: Record = {
        "instance_id": instance_id,
        "name": name,
        "created_time": h.format_time(h.utcnow()),
        "output": None,
        "custom_status": None,
    }
    new_execution(record, input_, inbox=[])
    return record


def new_execution(record: Record, input_: str | None, inbox: list[Any]) -> None:
    """Reset the record to a fresh, Pending execution (start or continue-as-new)."""
    record.update(
        execution_id=uuid.uuid4().hex,
        input=input_,
        runtime_status="Pending",
        history=[],
        next_event_id=0,
        action_ids=[],
        activities=[],
        timers=[],
        inbox=inbox,
    )


def status_json(record: Record, show_history: bool = False) -> dict[str, Any]:
    """The extension's status JSON; ``input`` stays JSON-encoded, as the extension shows it."""
    status = {
        "name": record["name"],
        "instanceId": record["instance_id"],
        "runtimeStatus": record["runtime_status"],
        "input": record["input"],
        "output": record["output"],
        "customStatus": record["custom_status"],
        "createdTime": record["created_time"],
        "lastUpdatedTime": record["last_updated_time"],
    }
    if show_history:
        status["history"] = record["history"]
    return status


def take_batch(inbox: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pop what the next episode delivers: a solo entry alone, else all up to the next solo.

    Retry events are solo because the SDK numbers the retry timer or the retried task while
    it handles that event; alone in its episode, that number is the record's next id.
    """
    if inbox and inbox[0].get("solo"):
        count = 1
    else:
        count = next((i for i, e in enumerate(inbox) if e.get("solo")), len(inbox))
    batch = inbox[:count]
    del inbox[:count]
    return batch


def next_id(record: Record) -> int:
    """Hand out the execution's next task id (DTFx's sequence number)."""
    record["next_event_id"] += 1
    return int(record["next_event_id"]) - 1


def schedule_activity(
    record: Record, action: dict[str, Any], task_id: int, attempt: int, now: datetime
) -> dict[str, Any]:
    """Add a CallActivity[WithRetry] action to ``activities``; returns its TaskScheduled."""
    activity: dict[str, Any] = {
        "id": task_id,
        "name": action.get("functionName", action.get("name")),
        "input": action.get("input"),
        "attempt": attempt,
        "retry": action.get("retryOptions", action.get("retry")),
    }
    record["activities"].append(activity)
    return h.task_scheduled(now, task_id, str(activity["name"]), activity["input"])


def activity_done(record: Record, task_id: int, outcome: dict[str, Any], now: datetime) -> bool:
    """Move a finished activity to the inbox; False if it is no longer scheduled."""
    activity = next((a for a in record["activities"] if a["id"] == task_id), None)
    if activity is None:
        return False
    record["activities"].remove(activity)
    if outcome["ok"]:
        record["inbox"].append({"event": h.task_completed(now, task_id, outcome["result"])})
        return True
    entry: dict[str, Any] = {
        "event": h.task_failed(now, task_id, outcome["reason"], outcome["details"])
    }
    if activity.get("retry") is not None:
        # DTFx's retry handling: a timer after every failed attempt, the last one included.
        entry.update(solo=True, retry_timer=activity)
    record["inbox"].append(entry)
    return True


def fire_timers(record: Record, now: datetime) -> bool:
    """Move every due timer to the inbox as TimerFired; True if any was due."""
    due = [t for t in record["timers"] if h.parse_time(t["fire_at"]) <= now]
    for timer in due:
        record["timers"].remove(timer)
        entry: dict[str, Any] = {"event": h.timer_fired(now, timer["id"], timer["fire_at"])}
        if timer.get("retry") is not None:
            entry.update(solo=True, reschedule=timer["retry"])
        record["inbox"].append(entry)
    return bool(due)


def deliver(record: Record, entry: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """What DTFx does as the SDK sees this entry: create a retry timer or retry the task."""
    activity = entry.get("retry_timer")
    if activity is not None:
        delay = timedelta(milliseconds=activity["retry"]["firstRetryIntervalInMilliseconds"])
        timer_id, fire_at = next_id(record), h.format_time(now + delay)
        record["timers"].append({"id": timer_id, "fire_at": fire_at, "retry": activity})
        return [h.timer_created(now, timer_id, fire_at)]
    activity = entry.get("reschedule")
    if activity is not None and activity["attempt"] < activity["retry"]["maxNumberOfAttempts"]:
        task_id = next_id(record)
        return [schedule_activity(record, activity, task_id, activity["attempt"] + 1, now)]
    return []


def apply_actions(
    record: Record, actions: list[dict[str, Any]], now: datetime
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Schedule the actions not seen before; returns their events and a final action, if any.

    The final action is a ContinueAsNew, or one this runtime does not support.
    """
    for action, task_id in zip(actions, record["action_ids"], strict=False):
        if action.get("actionType") == h.ActionType.CREATE_TIMER and action.get("isCanceled"):
            record["timers"] = [t for t in record["timers"] if t["id"] != task_id]
    events: list[dict[str, Any]] = []
    for action in actions[len(record["action_ids"]) :]:
        kind = action.get("actionType")
        if kind == h.ActionType.WAIT_FOR_EXTERNAL_EVENT:
            record["action_ids"].append(None)
            continue
        if kind not in h.ID_ACTIONS:
            return events, action
        task_id = next_id(record)
        record["action_ids"].append(task_id)
        if kind == h.ActionType.CREATE_TIMER:
            events.append(h.timer_created(now, task_id, action["fireAt"]))
            record["timers"].append({"id": task_id, "fire_at": action["fireAt"]})
        else:
            events.append(schedule_activity(record, action, task_id, 1, now))
    return events, None
