"""BlobInstanceStore against a real Azurite, alone and under the local Durable runtime."""

from __future__ import annotations

import time
from typing import Any

import azure.durable_functions as df
import pytest
from azure.storage.blob import BlobServiceClient

from batchfx.core.settings import Settings
from batchfx.local.durable.runtime import LocalDurableRuntime
from batchfx.local.durable.store import BlobInstanceStore
from batchfx.storage.blobs import BlobStore

pytestmark = pytest.mark.azurite

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def double_twice(context: df.DurableOrchestrationContext) -> Any:
    once = yield context.call_activity("double", context.get_input())
    twice = yield context.call_activity("double", once)
    return twice


@app.activity_trigger(input_name="n")
def double(n: int) -> int:
    return 2 * n


def _store(connection_string: str, name: str) -> BlobInstanceStore:
    return BlobInstanceStore(BlobStore.from_settings(Settings(connection_string=connection_string)),
                             name)


def _record(instance_id: str, status: str) -> dict[str, Any]:
    return {"instance_id": instance_id, "runtime_status": status, "history": [{"EventType": 12}]}


def test_store_creates_its_container(connection_string: str, unique_name: str) -> None:
    _store(connection_string, unique_name)
    _store(connection_string, unique_name)  # already there: fine
    service = BlobServiceClient.from_connection_string(connection_string)
    assert service.get_container_client(unique_name).exists()


def test_record_round_trips_as_one_blob(connection_string: str, unique_name: str) -> None:
    store = _store(connection_string, unique_name)
    container = BlobServiceClient.from_connection_string(
        connection_string).get_container_client(unique_name)
    store.save(_record("job-1", "Running"))
    store.save({**_record("job-1", "Completed"), "output": {"n": 1}})
    assert store.load("job-1") == {**_record("job-1", "Completed"), "output": {"n": 1}}
    assert [b.name for b in container.list_blobs()] == ["instances/job-1.json"]
    assert store.load("missing") is None


def test_list_unfinished_skips_final_statuses(connection_string: str, unique_name: str) -> None:
    store = _store(connection_string, unique_name)
    for instance_id, status in [
        ("a", "Pending"),
        ("b", "Running"),
        ("c", "ContinuedAsNew"),
        ("d", "Completed"),
        ("e", "Failed"),
        ("f", "Terminated"),
    ]:
        store.save(_record(instance_id, status))
    assert sorted(r["instance_id"] for r in store.list_unfinished()) == ["a", "b", "c"]


def test_delete_removes_the_record(connection_string: str, unique_name: str) -> None:
    store = _store(connection_string, unique_name)
    store.save(_record("gone", "Completed"))
    assert store.delete("gone")
    assert store.load("gone") is None
    assert not store.delete("gone")


def test_runtime_resumes_an_instance_from_blobs(connection_string: str, unique_name: str) -> None:
    first = LocalDurableRuntime(app, _store(connection_string, unique_name))
    instance_id = first.start_new("double_twice", "job-9", 3)
    first.step()  # the first activity is scheduled and saved; then the runner goes away
    first.stop()

    second = LocalDurableRuntime(app, _store(connection_string, unique_name))
    deadline = time.monotonic() + 20
    while (second.get_status(instance_id) or {}).get("runtimeStatus") != "Completed":
        assert time.monotonic() < deadline, second.get_status(instance_id)
        if not second.step():
            time.sleep(0.01)
    assert second.get_status(instance_id)["output"] == 12  # type: ignore[index]
