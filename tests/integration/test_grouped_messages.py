"""Messages naming several mini-batches, on Azurite with real script processes: each
mini-batch scored and recorded on its own, the rest handed on when a message runs long or
the instance stops, and a poisoned message failing only the mini-batches that were tried."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from job_helpers import spec_for, upload_inputs

from batchfx.core.packing import PER_MESSAGE_SPREAD
from batchfx.core.records import (
    ManifestRef,
    MiniBatchRecord,
    MiniBatchStatus,
    decode_body,
    encode_message,
    mini_batch_key,
)
from batchfx.scoring.pool import ScriptPool
from batchfx.services import scorer_cache
from batchfx.services.jobs import submit_job
from batchfx.services.partitioner import partition_job
from batchfx.services.poison import record_poison_message
from batchfx.services.scorer import ScoreResult, score_message
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite

N = 2 * PER_MESSAGE_SPREAD  # mini-batches of one file: messages of two each (node_count 8)


@pytest.fixture
def pool() -> Iterator[ScriptPool]:
    with ScriptPool(init_timeout=60, shutdown_timeout=2) as p:
        yield p


@pytest.fixture
def job_messages(storage: Storage, data: str) -> list[str]:
    """A job of N one-file mini-batches, partitioned: its messages' texts, in order."""
    scorer_cache.clear()
    upload_inputs(storage, data, [1] * N)
    # eight instances: enough places for the page to go out in 64 messages
    job = submit_job(storage, spec_for(data, mini_batch_size=1, node_count=8))
    assert partition_job(storage, job.job_id).done
    texts = []
    while batch := list(storage.queues.receive(storage.settings.queue_name,
                                               visibility_timeout=300, max_messages=32)):
        texts += [m.content for m in batch]
        for m in batch:
            storage.queues.delete(storage.settings.queue_name, m.id, m.pop_receipt)
    return sorted(texts, key=lambda t: decode_body(t).index)


def _row(storage: Storage, job_id: str, index: int) -> MiniBatchRecord | None:
    found = storage.tables.get(storage.settings.minibatches_table, job_id,
                               mini_batch_key(index))
    return None if found is None else MiniBatchRecord.from_entity(found.values)


def test_the_partitioner_sends_two_mini_batches_a_message(job_messages: list[str]) -> None:
    bodies = [decode_body(t) for t in job_messages]
    assert [b.count for b in bodies] == [2] * (N // 2)
    assert [b.index for b in bodies] == list(range(0, N, 2))


def test_each_mini_batch_of_a_message_gets_its_own_row(storage: Storage, pool: ScriptPool,
                                                       job_messages: list[str]) -> None:
    body = decode_body(job_messages[3])
    results = score_message(storage, pool, job_messages[3], message_id="m3", dequeue_count=1)
    assert results == [ScoreResult.SUCCEEDED, ScoreResult.SUCCEEDED]
    for index in (6, 7):
        row = _row(storage, body.job_id, index)
        assert row is not None and row.status is MiniBatchStatus.SUCCEEDED
        assert (row.items, row.succeeded, row.tries) == (1, 1, 1)
    # delivered again (its delete lost): both found finished, nothing scored twice
    again = score_message(storage, pool, job_messages[3], message_id="m3", dequeue_count=2)
    assert again == [ScoreResult.DUPLICATE, ScoreResult.DUPLICATE]


def test_a_message_running_long_hands_the_rest_on(storage: Storage, pool: ScriptPool,
                                                  job_messages: list[str]) -> None:
    body = decode_body(job_messages[0])
    results = score_message(storage, pool, job_messages[0], message_id="m0", dequeue_count=1,
                            hand_on_after_s=0.0)
    # the first is scored; the second would be the last, which is never handed on alone
    assert results == [ScoreResult.SUCCEEDED, ScoreResult.SUCCEEDED]
    first, last = decode_body(job_messages[1]).ref, decode_body(job_messages[2]).ref
    text = encode_message(body.job_id, 2, ManifestRef(  # mini-batches 2-5 in one message
        first.blob, first.offset, last.offset + last.length - first.offset), 4)
    results = score_message(storage, pool, text, message_id="m1", dequeue_count=1,
                            hand_on_after_s=0.0)
    assert results == [ScoreResult.SUCCEEDED] + [ScoreResult.HANDED_ON] * 3
    (handed,) = list(storage.queues.receive(storage.settings.queue_name, visibility_timeout=30))
    rest = decode_body(handed.content)
    assert (rest.job_id, rest.index, rest.count) == (body.job_id, 3, 3)
    assert [line.index for line, _ in scorer_cache.manifest_lines(storage, rest.ref)] \
        == [3, 4, 5]
    assert _row(storage, body.job_id, 3) is None  # not started: no try counted


def test_a_poisoned_message_fails_the_tried_and_sends_the_untried_again(
        storage: Storage, pool: ScriptPool, job_messages: list[str]) -> None:
    body = decode_body(job_messages[5])  # mini-batches 10 and 11
    score_message(storage, pool, job_messages[5], message_id="m5", dequeue_count=1,
                  hand_on_after_s=60)
    storage.tables.replace(storage.settings.minibatches_table, {  # 11: as a dead try left it
        **MiniBatchRecord(body.job_id, 11, MiniBatchStatus.RUNNING, items=1, tries=2,
                          worker="w:1").to_entity()}, etag=None)
    results = record_poison_message(storage, job_messages[5], dequeue_count=5)
    assert results == [ScoreResult.DUPLICATE, ScoreResult.FAILED]
    failed = _row(storage, body.job_id, 11)
    assert failed is not None and failed.error_type == "PoisonMessage"
    assert failed.status is MiniBatchStatus.FAILED and failed.failed == 1

    untried = decode_body(job_messages[6])  # 12 and 13: never started
    assert record_poison_message(storage, job_messages[6], dequeue_count=5) \
        == [ScoreResult.HANDED_ON, ScoreResult.HANDED_ON]
    sent = sorted(decode_body(m.content).index for m in storage.queues.receive(
        storage.settings.queue_name, visibility_timeout=30, max_messages=32))
    assert sent == [untried.index, untried.index + 1]
    assert _row(storage, body.job_id, 12) is None


class _StopsWhileStaging(ScriptPool):
    """A real pool told to stop just after it let a mini-batch in: the mini-batch is then
    claimed and staged, and finds no process to run on."""

    @contextmanager
    def admit(self, job_id: str, processes: int) -> Iterator[None]:
        with super().admit(job_id, processes):
            self.drain()
            yield


def _handed_on(storage: Storage) -> list[tuple[int, int]]:
    return [(b.index, b.count) for b in (decode_body(m.content) for m in storage.queues.receive(
        storage.settings.queue_name, visibility_timeout=30, max_messages=32))]


def test_a_stopping_instance_starts_nothing_and_sends_the_message_on(
        storage: Storage, job_messages: list[str]) -> None:
    body = decode_body(job_messages[7])  # mini-batches 14 and 15
    with ScriptPool(init_timeout=60, shutdown_timeout=2) as pool:
        pool.drain()
        results = score_message(storage, pool, job_messages[7], message_id="m7",
                                dequeue_count=1)
    assert results == [ScoreResult.HANDED_ON, ScoreResult.HANDED_ON]
    assert _handed_on(storage) == [(body.index, 2)]
    assert _row(storage, body.job_id, body.index) is None  # never claimed


def test_a_mini_batch_staged_when_the_instance_stops_gives_its_try_back(
        storage: Storage, pool: ScriptPool, job_messages: list[str]) -> None:
    body = decode_body(job_messages[8])  # mini-batches 16 and 17
    with _StopsWhileStaging(init_timeout=60, shutdown_timeout=2) as stopping:
        results = score_message(storage, stopping, job_messages[8], message_id="m8",
                                dequeue_count=1)
    assert results == [ScoreResult.HANDED_ON, ScoreResult.HANDED_ON]
    released = _row(storage, body.job_id, body.index)  # claimed, then its try given back
    assert released is not None and released.tries == 0 and released.lease_until == 0
    (handed,) = _handed_on(storage)
    assert handed == (body.index, 2)
    # The message sent on is scored by another instance: one try each, no "worker lost".
    text = encode_message(body.job_id, body.index, body.ref, 2)
    assert score_message(storage, pool, text, message_id="m8b", dequeue_count=1) \
        == [ScoreResult.SUCCEEDED, ScoreResult.SUCCEEDED]
    for index in (16, 17):
        row = _row(storage, body.job_id, index)
        assert row is not None and row.status is MiniBatchStatus.SUCCEEDED
        assert (row.tries, row.error_type) == (1, ""), row
