"""Partitioning a submitted job against a real Azurite: mini-batch messages and manifests."""

from __future__ import annotations

import pytest
from job_helpers import drain_messages, manifest_items, spec_for, upload_inputs

from batchfx.core.packing import parse_manifest_line
from batchfx.core.records import JobState
from batchfx.services.jobs import cancel_job, get_job, submit_job
from batchfx.services.partitioner import partition_job
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


def test_partition_turns_25_files_into_3_mini_batch_messages(storage: Storage,
                                                             data: str) -> None:
    names = upload_inputs(storage, data, [1] * 25)
    job = submit_job(storage, spec_for(data, mini_batch_size=10))
    result = partition_job(storage, job.job_id)
    assert (result.done, result.mini_batches, result.items) == (True, 3, 25)
    messages = drain_messages(storage)
    assert [(m[0], m[1]) for m in messages] == [(job.job_id, 0), (job.job_id, 1),
                                                (job.job_id, 2)]
    assert [manifest_items(storage, m[2]) for m in messages] == [names[:10], names[10:20],
                                                                 names[20:]]


def test_partition_records_totals_and_moves_the_job_to_running(storage: Storage,
                                                               data: str) -> None:
    upload_inputs(storage, data, [1] * 25)
    job = submit_job(storage, spec_for(data, mini_batch_size=10))
    partition_job(storage, job.job_id)
    stored = get_job(storage, job.job_id)
    assert stored.state is JobState.RUNNING
    assert stored.partitioned
    assert (stored.mini_batches_total, stored.items_total) == (3, 25)
    assert stored.started


def test_partition_manifest_line_names_the_input_container(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1, 2])
    job = submit_job(storage, spec_for(data))
    partition_job(storage, job.job_id)
    ((_, _, ref),) = drain_messages(storage)
    body = storage.blobs.download(storage.settings.jobs_container, ref.blob, offset=ref.offset,
                                  length=ref.length)
    line = parse_manifest_line(body)
    assert (line.container, line.prefix) == (data, "inputs")
    assert [(i.size, bool(i.etag)) for i in line.items] == [(1, True), (2, True)]


def test_partition_by_bytes_packs_by_size_with_a_big_file_alone(storage: Storage,
                                                                data: str) -> None:
    # 1KB = 1024 bytes: 400+400 fit, +400 does not; the 5000-byte file goes alone.
    names = upload_inputs(storage, data, [400, 400, 400, 5000, 100, 100])
    job = submit_job(storage, spec_for(data, mini_batch_size="1KB"))
    result = partition_job(storage, job.job_id)
    assert (result.mini_batches, result.items) == (4, 6)
    groups = [manifest_items(storage, m[2]) for m in drain_messages(storage)]
    assert groups == [names[0:2], [names[2]], [names[3]], names[4:6]]


def test_partition_applies_the_glob(storage: Storage, data: str) -> None:
    storage.blobs.upload(data, "inputs/a.png", b"1")
    storage.blobs.upload(data, "inputs/b.txt", b"1")
    storage.blobs.upload(data, "inputs/sub/c.png", b"1")
    job = submit_job(storage, spec_for(data, inputs={"path": f"{data}/inputs", "glob": "*.png"}))
    result = partition_job(storage, job.job_id)
    assert result.items == 2
    (message,) = drain_messages(storage)
    assert manifest_items(storage, message[2]) == ["inputs/a.png", "inputs/sub/c.png"]


def test_partition_of_a_uri_file_makes_one_mini_batch_of_it(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [3, 3])
    spec = spec_for(data, inputs={"path": f"{data}/inputs/f00001.txt", "type": "uri_file"})
    job = submit_job(storage, spec)
    result = partition_job(storage, job.job_id)
    assert (result.mini_batches, result.items) == (1, 1)
    (message,) = drain_messages(storage)
    assert manifest_items(storage, message[2]) == ["inputs/f00001.txt"]


def test_partition_called_again_after_it_is_done_sends_nothing_more(storage: Storage,
                                                                     data: str) -> None:
    upload_inputs(storage, data, [1] * 5)
    job = submit_job(storage, spec_for(data, mini_batch_size=2))
    partition_job(storage, job.job_id)
    again = partition_job(storage, job.job_id)
    assert (again.done, again.mini_batches, again.items) == (True, 3, 5)
    assert len(drain_messages(storage)) == 3


def test_partition_resumes_after_the_last_listing_page(storage: Storage, data: str) -> None:
    # partition_job has no page-size knob: the SDK's listing page is 5,000 blobs, so 5,005
    # files make two pages. A zero budget stops it after the first page.
    names = upload_inputs(storage, data, [1] * 5005)
    job = submit_job(storage, spec_for(data, mini_batch_size=7))
    first = partition_job(storage, job.job_id, budget_s=0)
    assert (first.done, first.items) == (False, 5000)
    assert not get_job(storage, job.job_id).partitioned
    second = partition_job(storage, job.job_id, budget_s=0)
    assert (second.done, second.items) == (True, 5005)
    messages = drain_messages(storage)
    # 5000 = 714 * 7 + 2: the first page's last mini-batch has 2 files; none spans two pages.
    assert [m[1] for m in messages] == list(range(716))
    assert len(manifest_items(storage, messages[714][2])) == 2
    assert manifest_items(storage, messages[715][2]) == names[5000:]
    stored = get_job(storage, job.job_id)
    assert (stored.partitioned, stored.mini_batches_total, stored.items_total) == (True, 716,
                                                                                   5005)


def test_partition_after_cancel_sends_nothing(storage: Storage, data: str) -> None:
    upload_inputs(storage, data, [1] * 5)
    job = submit_job(storage, spec_for(data))
    cancel_job(storage, job.job_id)
    result = partition_job(storage, job.job_id)
    assert result.mini_batches == 0
    assert drain_messages(storage) == []
    assert get_job(storage, job.job_id).state is JobState.CANCELED


def test_a_call_queues_about_max_mini_batches_and_the_next_goes_on_from_there(
        storage: Storage, data: str) -> None:
    """The orchestrator keeps the queue short: each call stops near its allowance."""
    names = upload_inputs(storage, data, [1] * 250)
    job = submit_job(storage, spec_for(data, mini_batch_size=1))
    steps = []
    while True:
        result = partition_job(storage, job.job_id, max_mini_batches=100)
        steps.append(result.mini_batches)
        if result.done:
            break
    assert steps == [100, 200, 250]
    messages = drain_messages(storage)
    assert [m[1] for m in messages] == list(range(250))
    assert [item for m in messages for item in manifest_items(storage, m[2])] == names
