"""A mini-batch's row, written by the worker scoring it: claiming a try before running it,
renewing the lease, giving a try back when storage (not the script) failed, and writing
the outcome. Each write is conditional on the row's ETag: a worker that lost its claim
cannot overwrite the winner's result, and a redelivered message never counts twice.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from batchfx.core.errors import ConflictError, StorageError
from batchfx.core.packing import ManifestLine
from batchfx.core.records import (
    ManifestRef,
    MiniBatchRecord,
    MiniBatchStatus,
    mini_batch_key,
    utc_now,
)
from batchfx.core.script_contract import TryError, TryOutcome
from batchfx.core.spec import JobSpec
from batchfx.services.output_writer import store_segments
from batchfx.services.result_parts import store_part
from batchfx.storage import Storage

__all__ = ["Attempt", "claim", "finish", "new_record", "note_dead_try", "release_claim",
           "renew", "set_error", "worker_name"]

logger = logging.getLogger(__name__)


def worker_name() -> str:
    """``host:pid`` of this worker process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_record(job_id: str, index: int, ref: ManifestRef, line: ManifestLine
               ) -> MiniBatchRecord:
    """The row of a mini-batch not tried yet."""
    return MiniBatchRecord(job_id, index, MiniBatchStatus.RUNNING, items=line.item_count,
                           items_planned=line.item_count, manifest=ref.blob,
                           manifest_offset=ref.offset, manifest_length=ref.length)


def note_dead_try(record: MiniBatchRecord) -> None:
    """The worker that started the last try died: that try counts, with this explanation
    (unless the worker recorded why the try ended before giving the mini-batch back)."""
    if not record.tries:  # its try was given back (release_claim): none died
        return
    if record.error_type and record.error_try == record.tries:
        return
    record.error_phase = "crash"
    record.error_type = "WorkerLost"
    record.error_message = (
        f"worker {record.worker or '?'} stopped during try {record.tries} without reporting "
        "(process killed, out of memory, or host restarted)")
    record.error_traceback = ""
    record.error_try = record.tries


def set_error(record: MiniBatchRecord, error: TryError | None, try_number: int) -> None:
    if error is None:
        return
    record.error_phase = error.phase.value
    record.error_type = error.type
    record.error_message = error.message
    record.error_traceback = error.traceback
    record.error_try = try_number


def claim(storage: Storage, record: MiniBatchRecord, etag: str | None, message_id: str,
          spec: JobSpec) -> str:
    """Start the next try: count it and stamp this worker on the row before any work."""
    record.tries += 1
    record.started = utc_now()
    return renew(storage, record, etag, message_id, spec)


def renew(storage: Storage, record: MiniBatchRecord, etag: str | None, message_id: str,
          spec: JobSpec) -> str:
    """Stamp this worker and a fresh lease on the row (a try is counted by ``claim``)."""
    record.status = MiniBatchStatus.RUNNING
    record.worker = worker_name()
    record.message_id = message_id
    record.lease_until = (time.time() + spec.run_invocation_timeout
                          + storage.settings.lease_margin_s)
    table = storage.settings.minibatches_table
    try:
        if etag is None:
            return storage.tables.insert(table, record.to_entity())
        return storage.tables.replace(table, record.to_entity(), etag=etag)
    except ConflictError:
        # The write may have landed and only its reply been lost: the SDK's retry then
        # meets our own ETag change (412). The row is ours if it carries this very claim.
        found = storage.tables.get(table, record.job_id, mini_batch_key(record.index))
        if found is None or not _is_claim(found.values, record):
            raise
        return found.etag


def release_claim(storage: Storage, record: MiniBatchRecord) -> None:
    """Undo this worker's claim if it is still the row's (best effort)."""
    table = storage.settings.minibatches_table
    try:
        found = storage.tables.get(table, record.job_id, mini_batch_key(record.index))
        if found is None or not _is_claim(found.values, record):
            return
        values = dict(found.values)
        values.update(tries=record.tries - 1, lease_until=0.0, message_id="", worker="")
        storage.tables.replace(table, values, etag=found.etag)
    except StorageError as exc:
        logger.warning("job %s: mini-batch %d: could not give back try %d: %s", record.job_id,
                       record.index, record.tries, exc)


def _is_claim(values: dict[str, Any], record: MiniBatchRecord) -> bool:
    """Whether a stored row is exactly ``record``'s claim (same try, worker, message, start)."""
    return (values.get("status") == MiniBatchStatus.RUNNING.value
            and values.get("tries") == record.tries and values.get("worker") == record.worker
            and values.get("message_id") == record.message_id
            and values.get("started") == record.started)


def finish(storage: Storage, record: MiniBatchRecord, etag: str | None,
           outcome: TryOutcome | None, spec: JobSpec) -> MiniBatchStatus:
    """Write the part blob (if any rows) and the final row, conditional on our claim;
    returns the status it ended with."""
    record.ended = utc_now()
    record.lease_until = 0.0
    if outcome is None:
        record.status = MiniBatchStatus.FAILED
        record.succeeded, record.failed, record.rows = 0, record.items, 0
    else:
        # A failed outcome may still carry rows: isolating the bad items scored the others.
        record.status = MiniBatchStatus.SUCCEEDED if outcome.ok else MiniBatchStatus.FAILED
        record.items = outcome.items  # tabular: the rows actually read, when known
        record.succeeded, record.failed, record.rows = (outcome.succeeded, outcome.failed,
                                                        outcome.rows)
        record.seconds = round(outcome.seconds, 3)
        record.header = (outcome.header or b"").decode("utf-8", "replace")
        if outcome.ok:
            record.worker = outcome.worker or record.worker
        else:
            set_error(record, outcome.error, record.error_try if record.isolations
                      else record.tries)
        if outcome.rows:
            store_part(storage, record, outcome.part, spec.output_format,
                       inline=not outcome.segments)
            if outcome.segments:  # per_input_file: which input file each run of rows is from
                record.segments = store_segments(storage, record.part, outcome.segments)
    table = storage.settings.minibatches_table
    if etag is None:
        storage.tables.insert(table, record.to_entity())
    else:
        storage.tables.replace(table, record.to_entity(), etag=etag)
    logger.info("job %s: mini-batch %d %s after %d tries (%d/%d items)", record.job_id,
                record.index, record.status.value, record.tries, record.succeeded, record.items)
    return record.status




@dataclass
class Attempt:
    """A mini-batch in this worker's hands: its row as last written (``etag``: the ETag of
    that write, None before the row exists), and the message that brought it. Every write
    is conditional on that ETag (see the module's docstring)."""

    storage: Storage
    spec: JobSpec
    message_id: str
    record: MiniBatchRecord
    etag: str | None = None

    def claim(self) -> None:
        """Count and stamp the next try before any work."""
        self.etag = claim(self.storage, self.record, self.etag, self.message_id, self.spec)

    def renew(self) -> None:
        """Stamp this worker and a fresh lease (an isolation run, a try's reason)."""
        self.etag = renew(self.storage, self.record, self.etag, self.message_id, self.spec)

    def finish(self, outcome: TryOutcome | None) -> MiniBatchStatus:
        """Write the outcome (None: failed with the recorded error) and end the attempt."""
        return finish(self.storage, self.record, self.etag, outcome, self.spec)

    def release(self) -> None:
        """Give the try under way back (storage, not the script, stopped it)."""
        release_claim(self.storage, self.record)
