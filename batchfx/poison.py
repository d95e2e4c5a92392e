"""A mini-batch message the queue gave up on (the poison queue) becomes a recorded failure."""

from __future__ import annotations

import logging

from batchfx.jobs import utc_now
from batchfx.partition import parse_manifest_line
from batchfx.records import MiniBatchRecord, MiniBatchStatus, decode_message, mini_batch_key
from batchfx.scorer import ScoreResult
from batchfx.storage import Storage

__all__ = ["record_poison_message"]

logger = logging.getLogger(__name__)


def record_poison_message(storage: Storage, text: str, *, dequeue_count: int) -> ScoreResult:
    """A message the host gave up on becomes a failed mini-batch, never silence."""
    try:
        job_id, index, ref = decode_message(text)
    except ValueError as exc:
        logger.error("poison queue: dropping a malformed message: %s", exc)
        return ScoreResult.SKIPPED
    table = storage.settings.minibatches_table
    found = storage.tables.get(table, job_id, mini_batch_key(index))
    if found is not None and MiniBatchStatus(found.values["status"]).is_final:
        return ScoreResult.DUPLICATE
    if found is not None:
        record = MiniBatchRecord.from_entity(found.values)
    else:
        line = parse_manifest_line(storage.blobs.download(
            storage.settings.jobs_container, ref.blob, offset=ref.offset, length=ref.length))
        record = MiniBatchRecord(job_id, index, MiniBatchStatus.FAILED, items=line.item_count,
                                 items_planned=line.item_count, manifest=ref.blob,
                                 manifest_offset=ref.offset, manifest_length=ref.length)
    record.status = MiniBatchStatus.FAILED
    record.succeeded, record.failed, record.rows = 0, record.items, 0
    record.error_phase = "crash"
    record.error_type = "PoisonMessage"
    record.error_message = (f"the queue gave up after {dequeue_count} deliveries: every worker "
                            f"that took this mini-batch stopped without reporting "
                            f"(last: {record.worker or 'none'})")
    record.error_try = record.tries
    record.ended = utc_now()
    storage.tables.replace(table, record.to_entity(), etag=found.etag if found else None)
    logger.error("job %s: mini-batch %d failed from the poison queue", job_id, index)
    return ScoreResult.FAILED
