"""A message the queue gave up on (the poison queue): its mini-batches become recorded
failures."""

from __future__ import annotations

import logging

from batchfx.core.records import (
    ManifestRef,
    MiniBatchRecord,
    MiniBatchStatus,
    decode_body,
    encode_message,
    mini_batch_key,
    utc_now,
)
from batchfx.services.scorer import ScoreResult
from batchfx.services.scorer_cache import manifest_lines
from batchfx.storage import Entity, Storage

__all__ = ["record_poison_message"]

logger = logging.getLogger(__name__)


def record_poison_message(storage: Storage, text: str, *, dequeue_count: int
                          ) -> list[ScoreResult]:
    """A message the host gave up on: its mini-batches that were tried become failed
    mini-batches, never silence. Those of a message of several that never started (a
    sibling kept stopping the workers) are sent again in a message of their own."""
    try:
        body = decode_body(text)
    except ValueError as exc:
        logger.error("poison queue: dropping a malformed message: %s", exc)
        return [ScoreResult.SKIPPED]
    table = storage.settings.minibatches_table
    results = []
    for line, ref in manifest_lines(storage, body.ref):
        found = storage.tables.get(table, body.job_id, mini_batch_key(line.index))
        if found is not None and MiniBatchStatus(found.values["status"]).is_final:
            results.append(ScoreResult.DUPLICATE)
        elif found is None and body.count > 1:
            storage.queues.send(storage.settings.queue_name,
                                encode_message(body.job_id, line.index, ref))
            results.append(ScoreResult.HANDED_ON)
        else:
            _record_failed(storage, body.job_id, line.index, line.item_count, ref, found,
                           dequeue_count)
            results.append(ScoreResult.FAILED)
    return results


def _record_failed(storage: Storage, job_id: str, index: int, items: int, ref: ManifestRef,
                   found: Entity | None, dequeue_count: int) -> None:
    if found is not None:
        record = MiniBatchRecord.from_entity(found.values)
    else:
        record = MiniBatchRecord(job_id, index, MiniBatchStatus.FAILED, items=items,
                                 items_planned=items, manifest=ref.blob,
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
    storage.tables.replace(storage.settings.minibatches_table, record.to_entity(),
                           etag=found.etag if found else None)
    logger.error("job %s: mini-batch %d failed from the poison queue", job_id, index)
