"""Handling blob drops against Azurite: one job per blob version, rejected drops recorded."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from app_settings import app_settings

from batchfx.core.deployments import parse_deployment
from batchfx.core.records import JobRecord
from batchfx.services.blob_drops import DropRecord, DropState, handle_drop, list_drops
from batchfx.services.jobs import get_job, list_jobs, submit_job_once
from batchfx.services.registry import delete_deployment, register_deployment
from batchfx.services.upload import upload_folder
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


@pytest.fixture
def storage(connection_string: str, unique_name: str, tmp_path: Path) -> Storage:
    store = Storage.from_settings(app_settings(connection_string, unique_name,
                                               tmp_path / "work",
                                               inbox_container=unique_name + "-inbox"))
    store.ensure_resources()
    return store


@pytest.fixture
def inbox(storage: Storage, tmp_path: Path) -> str:
    """The inbox, with a registered deployment ``digits`` and a folder of data for it."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "score.py").write_text("def run(mini_batch):\n    return mini_batch\n")
    code = upload_folder(storage, folder, "code")
    register_deployment(storage, parse_deployment({
        "name": "digits", "source_directory": code, "entry_script": "score.py",
        "output": f"{storage.settings.jobs_container}-out/digits"}))
    inbox = storage.settings.inbox_container
    for name in ("a.txt", "b.txt"):
        storage.blobs.upload(inbox, f"digits/2026-11-22/{name}", name.encode())
    return inbox


class Starter:
    """Submits as ``start_job`` does (idempotent on the request id), without an orchestrator."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def __call__(self, spec: dict[str, Any], *, client_request_id: str,
                       tags: dict[str, str]) -> tuple[JobRecord, bool]:
        return submit_job_once(self.storage, spec, client_request_id=client_request_id,
                               tags=tags)


def drop(storage: Storage, blob: str, data: bytes = b"") -> str:
    """Upload ``blob`` (container/name); returns its ETag."""
    container, _, name = blob.partition("/")
    storage.blobs.upload(container, name, data)
    return next(r.etag for r in storage.blobs.list_names(container, name) if r.name == name)


def handle(storage: Storage, blob: str, etag: str) -> DropRecord | None:
    return asyncio.run(handle_drop(storage, Starter(storage), blob, etag))


def test_a_success_marker_submits_a_job_over_its_folder(storage: Storage, inbox: str) -> None:
    marker = f"{inbox}/digits/2026-11-22/_SUCCESS"
    record = handle(storage, marker, drop(storage, marker))
    assert record is not None and record.state is DropState.SUBMITTED
    job = get_job(storage, record.job_id)
    assert job.spec["inputs"]["path"] == f"{inbox}/digits/2026-11-22"
    assert job.submission.tags == {"trigger": "blob-drop", "blob": marker, "deployment": "digits"}


def test_the_same_event_twice_submits_one_job(storage: Storage, inbox: str) -> None:
    marker = f"{inbox}/digits/2026-11-22/_SUCCESS"
    etag = drop(storage, marker)
    first, second = handle(storage, marker, etag), handle(storage, marker, etag)
    assert first is not None and second is not None
    assert first.job_id == second.job_id
    assert len(list_jobs(storage)) == 1
    assert len(list_drops(storage)) == 1


def test_a_submitted_drop_delivered_again_keeps_its_job_after_the_deployment_goes(
        storage: Storage, inbox: str) -> None:
    marker = f"{inbox}/digits/2026-11-22/_SUCCESS"
    etag = drop(storage, marker)
    first = handle(storage, marker, etag)
    delete_deployment(storage, "digits")
    assert handle(storage, marker, etag) == first


def test_a_new_marker_version_submits_a_second_job(storage: Storage, inbox: str) -> None:
    marker = f"{inbox}/digits/2026-11-22/_SUCCESS"
    first = handle(storage, marker, drop(storage, marker))
    second = handle(storage, marker, drop(storage, marker, b"again"))
    assert first is not None and second is not None
    assert first.job_id != second.job_id
    assert len(list_jobs(storage)) == 2


def test_a_missing_etag_is_read_from_storage(storage: Storage, inbox: str) -> None:
    marker = f"{inbox}/digits/2026-11-22/_SUCCESS"
    etag = drop(storage, marker)
    record = handle(storage, marker, "")
    assert record is not None and record.etag == etag
    assert handle(storage, marker, etag) == record


def test_an_unknown_deployment_is_rejected_with_the_reason_and_no_job(
        storage: Storage, inbox: str, caplog: pytest.LogCaptureFixture) -> None:
    marker = f"{inbox}/nosuch/2026-11-22/_SUCCESS"
    with caplog.at_level(logging.ERROR, logger="batchfx.services.blob_drops"):
        record = handle(storage, marker, drop(storage, marker))
    assert record is not None and record.state is DropState.REJECTED
    assert "no deployment named 'nosuch'; registered deployments: digits" in record.reason
    assert list_jobs(storage) == []
    assert list_drops(storage) == [record]
    assert f"blob drop {marker} rejected" in caplog.text


def test_a_marker_over_an_empty_folder_is_rejected(storage: Storage, inbox: str) -> None:
    marker = f"{inbox}/digits/empty/_SUCCESS"
    record = handle(storage, marker, drop(storage, marker))
    assert record is not None and record.state is DropState.REJECTED
    assert "zero inputs" in record.reason


def test_a_badly_named_drop_is_rejected(storage: Storage, inbox: str) -> None:
    marker = f"{inbox}/digits/_SUCCESS"
    record = handle(storage, marker, drop(storage, marker))
    assert record is not None and record.state is DropState.REJECTED
    assert "completes a folder" in record.reason


def test_a_data_file_is_ignored_and_leaves_no_record(storage: Storage, inbox: str) -> None:
    blob = f"{inbox}/digits/2026-11-22/a.txt"
    assert handle(storage, blob, "0x1") is None
    assert list_drops(storage) == []


def test_a_job_file_submits_its_partial_spec(storage: Storage, inbox: str) -> None:
    job_file = f"{inbox}/digits/nightly.job.yml"
    text = (f"inputs: {inbox}/digits/2026-11-22\nparameters:\n  day: '2026-11-22'\n"
            "settings:\n  mini_batch_size: 1\n")
    record = handle(storage, job_file, drop(storage, job_file, text.encode()))
    assert record is not None and record.state is DropState.SUBMITTED
    spec = get_job(storage, record.job_id).spec
    assert spec["mini_batch_size"] == 1
    assert spec["arguments"][-2:] == ["--day", "2026-11-22"]


def test_a_job_file_with_an_unknown_field_is_rejected_naming_it(storage: Storage,
                                                                inbox: str) -> None:
    job_file = f"{inbox}/digits/nightly.job.json"
    body = f'{{"inputs": "{inbox}/digits/2026-11-22", "colour": "red"}}'.encode()
    record = handle(storage, job_file, drop(storage, job_file, body))
    assert record is not None and record.state is DropState.REJECTED
    assert "colour: unknown field" in record.reason
    assert list_jobs(storage) == []


def test_a_job_file_naming_another_deployment_is_rejected(storage: Storage,
                                                          inbox: str) -> None:
    job_file = f"{inbox}/digits/nightly.job.yml"
    text = f"deployment: other\ninputs: {inbox}/digits/2026-11-22\n".encode()
    record = handle(storage, job_file, drop(storage, job_file, text))
    assert record is not None and record.state is DropState.REJECTED
    assert "the folder names the deployment" in record.reason


def test_a_job_file_gone_before_it_is_read_is_rejected(storage: Storage, inbox: str) -> None:
    record = handle(storage, f"{inbox}/digits/gone.job.yml", "0x1")
    assert record is not None and record.state is DropState.REJECTED
    assert "no longer exists" in record.reason


def test_a_rejected_drop_delivered_again_keeps_one_record(storage: Storage,
                                                          inbox: str) -> None:
    marker = f"{inbox}/nosuch/x/_SUCCESS"
    etag = drop(storage, marker)
    first = handle(storage, marker, etag)
    assert handle(storage, marker, etag) == first
    assert list_drops(storage) == [first]


def test_drops_are_listed_newest_first(storage: Storage, inbox: str) -> None:
    older = handle(storage, f"{inbox}/nosuch/a/_SUCCESS", "0x1")
    newer = handle(storage, f"{inbox}/nosuch/b/_SUCCESS", "0x2")
    assert list_drops(storage) == [newer, older]
    assert list_drops(storage, limit=1) == [newer]
