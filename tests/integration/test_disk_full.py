"""A worker whose disk fills while staging a mini-batch says so: the try fails as
NoSpaceLeft (never "worker lost … out of memory"), the message comes back for another try,
and the last try's failure keeps that reason."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest
from job_helpers import spec_for, upload_inputs

from batchfx.core.errors import DiskFullError
from batchfx.core.records import MiniBatchRecord, MiniBatchStatus, mini_batch_key
from batchfx.scoring.pool import ScriptPool
from batchfx.services import scorer, scorer_cache
from batchfx.services.jobs import submit_job
from batchfx.services.partitioner import partition_job
from batchfx.services.scorer import ScoreResult, score_message
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


@pytest.fixture
def pool() -> Iterator[ScriptPool]:
    with ScriptPool(init_timeout=60, shutdown_timeout=2) as p:
        yield p


def _full(*args: object, **kwargs: object) -> object:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/work/minibatches/x/item-0.txt")


def test_a_full_disk_fails_the_try_saying_so_and_the_message_comes_back(
        storage: Storage, data: str, pool: ScriptPool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    scorer_cache.clear()
    upload_inputs(storage, data, [1])
    job = submit_job(storage, spec_for(data, mini_batch_size=1, run_max_try=2))
    assert partition_job(storage, job.job_id).done
    (message,) = storage.queues.receive(storage.settings.queue_name, visibility_timeout=300)
    monkeypatch.setattr(scorer, "stage_inputs", _full)

    with pytest.raises(DiskFullError, match="no space left on the disk of worker"):
        score_message(storage, pool, message.content, message_id="m", dequeue_count=1)
    row = storage.tables.get(storage.settings.minibatches_table, job.job_id,
                             mini_batch_key(0))
    assert row is not None
    first = MiniBatchRecord.from_entity(row.values)
    assert (first.status, first.tries, first.error_type) == (
        MiniBatchStatus.RUNNING, 1, "NoSpaceLeft")
    assert "BATCHFX_WORK_DIR" in first.error_message

    # Delivered again: the last try fails the mini-batch with the same reason.
    assert score_message(storage, pool, message.content, message_id="m",
                         dequeue_count=2) == [ScoreResult.FAILED]
    row = storage.tables.get(storage.settings.minibatches_table, job.job_id,
                             mini_batch_key(0))
    assert row is not None
    last = MiniBatchRecord.from_entity(row.values)
    assert (last.status, last.tries, last.error_type) == (MiniBatchStatus.FAILED, 2,
                                                          "NoSpaceLeft")
    assert "out of memory" not in last.error_message
