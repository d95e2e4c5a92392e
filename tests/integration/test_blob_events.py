"""The local Event Grid stand-in against Azurite: at-least-once blob events, host's InputStream."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest
from azure.functions.blob import InputStream

from batchfx.core.settings import Settings
from batchfx.local.blob_events import BlobEventEmulator
from batchfx.local.http_server import shared_loop
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite

# One app for the module: the runner indexes an app once per object, and each test
# watches its own container, so calls are kept per container.
calls: dict[str, list[InputStream]] = defaultdict(list)
failing: set[str] = set()
loops: list[object] = []

app = func.FunctionApp()


@app.blob_trigger(arg_name="blob", path="%INBOX%/{name}", connection="AzureWebJobsStorage",
                  source=func.BlobSource.EVENT_GRID)
def on_blob(blob: InputStream) -> None:
    name = blob.name or ""
    if name in failing:
        raise RuntimeError(f"cannot handle {name}")
    calls[name.split("/")[0]].append(blob)


@app.blob_trigger(arg_name="blob", path="%OTHER%/{name}", connection="AzureWebJobsStorage",
                  source=func.BlobSource.EVENT_GRID)
async def on_blob_async(blob: InputStream) -> None:
    import asyncio

    loops.append(asyncio.get_running_loop())
    calls[(blob.name or "").split("/")[0]].append(blob)


@pytest.fixture
def storage(connection_string: str) -> Storage:
    return Storage.from_settings(Settings(connection_string=connection_string))


@pytest.fixture
def inbox(storage: Storage, unique_name: str) -> str:
    storage.blobs.ensure_container(unique_name)
    return unique_name


def _emulator(storage: Storage, inbox: str, **options: Any) -> BlobEventEmulator:
    env = {"INBOX": inbox, "OTHER": f"{inbox}-other"}
    return BlobEventEmulator(app, storage, env, lambda: "{}", **options)


def _names(inbox: str) -> list[str]:
    return sorted(b.name or "" for b in calls[inbox])


def test_each_new_blob_is_delivered_once(storage: Storage, inbox: str) -> None:
    storage.blobs.upload(inbox, "a/one.csv", b"1")
    storage.blobs.upload(inbox, "a/_SUCCESS", b"")
    emulator = _emulator(storage, inbox)
    assert emulator.poll_once() == 2
    assert emulator.poll_once() == 0
    assert _names(inbox) == [f"{inbox}/a/_SUCCESS", f"{inbox}/a/one.csv"]


def test_the_function_gets_the_input_stream_the_host_builds(storage: Storage,
                                                            inbox: str) -> None:
    storage.blobs.upload(inbox, "d/x.job.yml", b"inputs: x")
    _emulator(storage, inbox).poll_once()
    [blob] = calls[inbox]
    [ref] = storage.blobs.list_names(inbox, "d/")
    assert blob.name == f"{inbox}/d/x.job.yml"
    assert blob.read() == b"inputs: x"
    assert blob.length == 9
    assert blob.blob_properties["ETag"] == ref.etag
    assert (blob.uri or "").endswith(f"/{inbox}/d/x.job.yml")


def test_an_overwritten_blob_is_delivered_again(storage: Storage, inbox: str) -> None:
    storage.blobs.upload(inbox, "d/a/_SUCCESS", b"")
    emulator = _emulator(storage, inbox)
    emulator.poll_once()
    storage.blobs.upload(inbox, "d/a/_SUCCESS", b"again")
    assert emulator.poll_once() == 1
    etags = [b.blob_properties["ETag"] for b in calls[inbox]]
    assert len(etags) == 2 and etags[0] != etags[1]


def test_a_new_emulator_delivers_every_existing_blob_again(storage: Storage,
                                                           inbox: str) -> None:
    storage.blobs.upload(inbox, "d/a/_SUCCESS", b"")
    _emulator(storage, inbox).poll_once()
    assert _emulator(storage, inbox).poll_once() == 1
    assert _names(inbox) == [f"{inbox}/d/a/_SUCCESS"] * 2


def test_a_failing_function_is_given_up_after_max_attempts(storage: Storage,
                                                          inbox: str) -> None:
    name = f"{inbox}/d/bad/_SUCCESS"
    storage.blobs.upload(inbox, "d/bad/_SUCCESS", b"")
    failing.add(name)
    emulator = _emulator(storage, inbox, max_attempts=2)
    emulator.poll_once()
    emulator.poll_once()
    failing.discard(name)
    assert emulator.poll_once() == 0
    assert calls[inbox] == []


def test_a_function_that_recovers_is_delivered_on_a_later_poll(storage: Storage,
                                                               inbox: str) -> None:
    storage.blobs.upload(inbox, "d/a/_SUCCESS", b"")
    failing.add(f"{inbox}/d/a/_SUCCESS")
    emulator = _emulator(storage, inbox)
    assert emulator.poll_once() == 0
    failing.discard(f"{inbox}/d/a/_SUCCESS")
    assert emulator.poll_once() == 1


def test_the_subject_filter_leaves_other_blobs_undelivered(storage: Storage,
                                                           inbox: str) -> None:
    storage.blobs.upload(inbox, "d/a/part-1.csv", b"1")
    storage.blobs.upload(inbox, "d/a/_SUCCESS", b"")
    _emulator(storage, inbox, subject_ends_with=("/_SUCCESS",)).poll_once()
    assert _names(inbox) == [f"{inbox}/d/a/_SUCCESS"]


def test_async_functions_run_on_the_shared_loop(storage: Storage, inbox: str) -> None:
    storage.blobs.ensure_container(f"{inbox}-other")
    storage.blobs.upload(f"{inbox}-other", "d/a/_SUCCESS", b"")
    _emulator(storage, inbox).poll_once()
    assert _names(f"{inbox}-other") == [f"{inbox}-other/d/a/_SUCCESS"]
    assert loops[-1] is shared_loop()


def test_a_container_that_does_not_exist_yet_delivers_nothing(storage: Storage,
                                                              unique_name: str) -> None:
    assert _emulator(storage, f"{unique_name}-none").poll_once() == 0


def test_a_missing_app_setting_in_the_path_is_named(storage: Storage) -> None:
    with pytest.raises(KeyError, match="OTHER"):
        BlobEventEmulator(app, storage, {"INBOX": "x"}, lambda: "{}")


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the emulator did not deliver the event")
        threading.Event().wait(0.05)


def test_started_it_delivers_blobs_in_the_background(storage: Storage, inbox: str) -> None:
    emulator = _emulator(storage, inbox, poll_interval=0.05).start()
    try:
        storage.blobs.upload(inbox, "d/a/_SUCCESS", b"")
        _until(lambda: bool(calls[inbox]))
    finally:
        emulator.stop()
    assert _names(inbox) == [f"{inbox}/d/a/_SUCCESS"]
