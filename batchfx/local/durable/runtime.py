"""A minimal local Durable Task runtime that runs the app's own Durable Functions.

Orchestrators run through the SDK's replay entry (the function the v2 decorator
registered, called with the context JSON the host would send); their actions are
applied here: activities run in-process on a thread pool and come back as
TaskCompleted/TaskFailed, timers fire on the wall clock, continue-as-new starts a new
execution. ``handle_http`` answers the webhook calls ``DurableOrchestrationClient`` makes,
so a ``durable_client_input`` function works unchanged with :meth:`client_binding`.

Not supported (the instance fails, naming the action): sub-orchestrators, durable HTTP
calls and entities. One runtime per store at a time.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import secrets
import threading
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import azure.functions as func
from azure.durable_functions.models.utils.df_serialization import df_dumps
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from batchfx.local.bindings import triggered
from batchfx.local.durable import history as h
from batchfx.local.durable import store as s
from batchfx.local.durable.store import (
    BlobInstanceStore,
    InstanceStore,
    MemoryInstanceStore,
    Record,
    is_unfinished,
)

__all__ = ["BlobInstanceStore", "InstanceStore", "LocalDurableRuntime", "MemoryInstanceStore"]

logger = logging.getLogger(__name__)

_Key = tuple[str, str, int]  # (instance id, execution id, event id)


class LocalDurableRuntime:
    """Drives the app's orchestrators and activities in-process, persisting to ``store``."""

    def __init__(
        self,
        app: func.FunctionRegister,
        store: InstanceStore,
        *,
        base_url: str = "http://127.0.0.1:0",
        task_hub: str = "batchfx",
        activity_workers: int = 4,
    ) -> None:
        if activity_workers < 1:
            raise ValueError(f"activity_workers: must be at least 1, got {activity_workers}")
        self.base_url = base_url.rstrip("/")
        self.task_hub = task_hub
        self.rpc_token = secrets.token_urlsafe(18)  # the app's own calls: a path it alone knows
        self.system_key = ""
        self._store = store
        self._workers = activity_workers
        self._orchestrators: dict[str, Callable[..., Any]] = {}
        self._activities: dict[str, tuple[Callable[..., Any], str]] = {}
        for fn in triggered(app, "orchestrationTrigger"):
            self._orchestrators[fn.name] = fn.user_function
        for fn in triggered(app, "activityTrigger"):
            self._activities[fn.name] = (fn.user_function, fn.trigger["name"])
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[_Key, Future[dict[str, Any]]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Unfinished instances live here (write-through to the store); finished ones are
        # read back from the store. Loading them is what resumes a restarted runner.
        self._records: dict[str, dict[str, Any]] = {
            r["instance_id"]: r for r in store.list_unfinished()
        }
        for instance_id in self._records:
            logger.info("Durable instance %s: resumed from the store", instance_id)

    # -- client operations -------------------------------------------------------------

    def start_new(self, name: str, instance_id: str | None, input: Any) -> str:
        """Start orchestrator ``name``; an id that is still pending/running is not restarted."""
        encoded = None if input is None else df_dumps(input)
        return self._start(name, instance_id, encoded)

    def _start(self, name: str, instance_id: str | None, input_: str | None) -> str:
        if name not in self._orchestrators:
            known = ", ".join(sorted(self._orchestrators)) or "none"
            raise ValueError(f"orchestrator {name!r} does not exist; known orchestrators: {known}")
        instance_id = instance_id or uuid.uuid4().hex
        with self._lock:
            existing = self._records.get(instance_id) or self._store.load(instance_id)
            if existing is not None and is_unfinished(existing):
                # The extension would raise here (overridableExistingInstanceStates =
                # NonRunningStates); batchfx wants "one job, one orchestration" to be quiet.
                logger.info(
                    "Durable instance %s: already %s, not started again",
                    instance_id,
                    existing["runtime_status"],
                )
                return instance_id
            record = s.new_record(instance_id, name, input_)
            self._save(record)
            logger.info("Durable instance %s: started orchestrator %s", instance_id, name)
        self._wake.set()
        return instance_id

    def get_status(self, instance_id: str, show_history: bool = False) -> dict[str, Any] | None:
        """The instance's status in the extension's JSON shape, or None if unknown."""
        with self._lock:
            record = self._records.get(instance_id)
            if record is not None:  # copied: the runtime keeps changing its record
                return copy.deepcopy(s.status_json(record, show_history))
        record = self._store.load(instance_id)  # finished, or unknown
        return None if record is None else s.status_json(record, show_history)

    def terminate(self, instance_id: str, reason: str) -> bool:
        """Terminate a pending/running instance; False if it is unknown or already finished."""
        with self._lock:
            record = self._records.get(instance_id)
            if record is None:
                return False
            now = h.utcnow()
            record["history"].append(h.execution_terminated(now, reason))
            self._finish(record, "Terminated", reason)
            self._save(record)
            logger.info("Durable instance %s: terminated (%s)", instance_id, reason)
        return True

    def raise_event(self, instance_id: str, name: str, data: Any) -> bool:
        """Queue an external event; False if the instance is unknown or already finished."""
        return self._raise_event(instance_id, name, json.dumps(data))

    def _raise_event(self, instance_id: str, name: str, input_: str | None) -> bool:
        with self._lock:
            record = self._records.get(instance_id)
            if record is None:
                return False
            record["inbox"].append({"event": h.event_raised(h.utcnow(), name, input_)})
            self._save(record)
        self._wake.set()
        return True

    def purge(self, instance_id: str) -> bool:
        """Delete a finished instance's record; False if unknown or still running."""
        with self._lock:
            if instance_id in self._records:
                return False
            return self._store.delete(instance_id)

    # -- the extension's HTTP API --------------------------------------------------------

    def client_binding(self, base_url: str | None = None) -> str:
        """The ``durableClient`` binding JSON the host would pass, pointing at this runtime."""
        return json.dumps(h.client_binding(base_url or self.base_url, self.task_hub,
                                           self.rpc_token, self.system_key))

    def handle_http(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        """Answer a ``/runtime/webhooks/durabletask/...`` call as the extension does."""
        parts = h.webhook_parts(path, self.rpc_token)  # public, or the app's own calls
        if parts is None:
            return 404, {"message": f"no durable webhook at {method} {path}"}
        method = method.upper()
        if method == "POST" and len(parts) in (2, 3) and parts[0] == "orchestrators":
            try:
                instance_id = self._start(
                    parts[1], parts[2] if len(parts) == 3 else None, h.body_to_input(body)
                )
            except ValueError as exc:
                return 400, {"Message": "Something went wrong", "ExceptionMessage": str(exc)}
            return 202, h.management_urls(self.base_url, self.task_hub, instance_id,
                                          self.system_key)
        if len(parts) < 2 or parts[0] != "instances":
            return 404, {"message": f"no durable webhook at {method} {path}"}
        instance_id, rest = parts[1], parts[2:]
        if method == "GET" and not rest:
            status = self.get_status(instance_id, query.get("showHistory", "").lower() == "true")
            if status is None:
                return 404, {"message": f"No instance with ID '{instance_id}' found."}
            return h.STATUS_CODES.get(status["runtimeStatus"], 202), status
        if method == "DELETE" and not rest:
            if self.purge(instance_id):
                return 200, {"instancesDeleted": 1}
            return 404, {"instancesDeleted": 0}
        if method == "POST" and rest[:1] == ["terminate"]:
            done = self.terminate(instance_id, query.get("reason", ""))
        elif method == "POST" and len(rest) == 2 and rest[0] == "raiseEvent":
            done = self._raise_event(instance_id, rest[1], h.body_to_input(body))
        else:
            return 404, {"message": f"no durable webhook at {method} {path}"}
        if done:
            return 202, None
        return (410, None) if self.get_status(instance_id) is not None else (404, None)

    # -- the loop ------------------------------------------------------------------------

    def step(self) -> bool:
        """One round: deliver results and due timers, replay orchestrators, start activities."""
        with self._lock:
            ids = list(self._records)
        progressed = False
        for instance_id in ids:
            with self._lock:
                record = self._records.get(instance_id)
                if record is not None:
                    progressed = self._advance(record) or progressed
        return progressed

    def run_forever(self, stop: threading.Event, poll_interval: float = 0.2) -> None:
        """Step until ``stop`` is set, sleeping up to ``poll_interval`` when idle."""
        while not stop.is_set():
            try:
                progressed = self.step()
            except Exception:
                logger.exception("Durable runtime: step failed")
                progressed = False
            if not progressed:
                self._wake.wait(poll_interval)
                self._wake.clear()

    def start(self) -> None:
        """Run :meth:`run_forever` on a daemon thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run_forever, args=(self._stop,), name="durable-runtime", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; running activities are abandoned (re-run on the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            self._futures.clear()

    # -- one instance ------------------------------------------------------------------

    def _advance(self, record: Record) -> bool:
        progressed = self._collect(record)
        if record["runtime_status"] in ("Pending", "ContinuedAsNew") or record["inbox"]:
            self._run_episode(record)
            progressed = True
        if progressed:
            self._save(record)
        if is_unfinished(record):
            self._submit_activities(record)
        return progressed

    def _collect(self, record: Record) -> bool:
        """Move finished activities and due timers of this instance into its inbox."""
        moved = False
        for key, future in list(self._futures.items()):
            if key[0] == record["instance_id"] and future.done():
                del self._futures[key]
                # A result from an execution that has since ended is dropped.
                if key[1] == record["execution_id"]:
                    moved = s.activity_done(record, key[2], future.result(), h.utcnow()) or moved
        return s.fire_timers(record, h.utcnow()) or moved

    def _run_episode(self, record: Record) -> None:
        """Deliver the next batch, replay the orchestrator and apply what it returned."""
        now, played, name = h.utcnow(), len(record["history"]), record["name"]
        new_events = [h.orchestrator_started(now)]
        after: list[dict[str, Any]] = []  # events for what this episode scheduled
        if record["runtime_status"] != "Running":
            new_events.append(
                h.execution_started(
                    now, record["instance_id"], record["execution_id"], name, record["input"]
                )
            )
            record["runtime_status"] = "Running"
        for entry in s.take_batch(record["inbox"]):
            new_events.append(entry["event"])
            after.extend(s.deliver(record, entry, now))
        record["history"].extend(new_events)
        context = h.context_json(record["instance_id"], record["input"], record["history"], played)
        try:
            state, error = h.read_state(self._orchestrators[name](context)), None
        except Exception as exc:
            error, state = h.read_failure(exc)
        record["custom_status"] = state.get("customStatus")
        if error is not None:
            self._fail(record, f"Orchestrator function '{name}' failed: {error}")
            return
        scheduled, final = s.apply_actions(
            record, h.flatten_actions(state.get("actions") or []), now
        )
        record["history"].extend([*after, *scheduled, h.orchestrator_completed(now)])
        if final is not None and final.get("actionType") == h.ActionType.CONTINUE_AS_NEW:
            # DTFx carries external events that arrived but were not consumed into the new run.
            carried = [
                e for e in record["inbox"] if e["event"]["EventType"] == h.EventType.EVENT_RAISED
            ]
            s.new_execution(record, final.get("input"), inbox=carried)
            record["runtime_status"] = "ContinuedAsNew"
            logger.info("Durable instance %s: continued as new", record["instance_id"])
        elif final is not None:
            kind = final.get("actionType")
            label = h.ActionType(kind).name if kind in set(h.ActionType) else repr(kind)
            self._fail(record, f"the local durable runtime does not support {label} actions")
        elif state.get("isDone"):
            record["history"].append(h.execution_completed(now, "Completed", state.get("output")))
            self._finish(record, "Completed", state.get("output"))

    def _fail(self, record: Record, message: str) -> None:
        record["history"].append(h.execution_completed(h.utcnow(), "Failed", message))
        self._finish(record, "Failed", message)
        logger.warning("Durable instance %s: failed: %s", record["instance_id"], message)

    def _finish(self, record: Record, status: str, output: Any) -> None:
        record.update(runtime_status=status, output=output, activities=[], timers=[], inbox=[])
        for key in [k for k in self._futures if k[0] == record["instance_id"]]:
            self._futures.pop(key).cancel()

    def _save(self, record: Record) -> None:
        record["last_updated_time"] = h.format_time(h.utcnow())
        self._store.save(record)
        if is_unfinished(record):
            self._records[record["instance_id"]] = record
        else:
            self._records.pop(record["instance_id"], None)

    # -- activities ----------------------------------------------------------------------

    def _submit_activities(self, record: dict[str, Any]) -> None:
        """Start every scheduled activity that is not running (new, or left by a restart)."""
        for activity in record["activities"]:
            key = (record["instance_id"], record["execution_id"], activity["id"])
            if key in self._futures:
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="activity")
            future = self._pool.submit(self._call_activity, activity["name"], activity["input"])
            future.add_done_callback(lambda _: self._wake.set())
            self._futures[key] = future

    def _call_activity(self, name: str, input_: str | None) -> dict[str, Any]:
        """Call an activity as the host does: decode input, encode the result as JSON."""
        if name not in self._activities:
            known = ", ".join(sorted(self._activities)) or "none"
            reason = f"Activity function '{name}' does not exist; known activities: {known}"
            return {"ok": False, "reason": reason, "details": ""}
        function, param = self._activities[name]
        try:
            datum = meta.Datum(type="json", value=input_ if input_ is not None else "null")
            value = ActivityTriggerConverter.decode(datum, trigger_metadata=None)
            result = function(**{param: value})
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
            encoded = ActivityTriggerConverter.encode(result, expected_type=None)
            return {"ok": True, "result": encoded.value}
        except Exception as exc:
            reason = f"Activity function '{name}' failed: {type(exc).__name__}: {exc}"
            # Details start at the user's frame, not at this wrapper.
            tb = exc.__traceback__.tb_next if exc.__traceback__ else None
            details = "".join(traceback.format_exception(type(exc), exc, tb))
            return {"ok": False, "reason": reason, "details": details}


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
