"""Scoring one mini-batch: claim its row, run the script with retries, record the outcome.

The mini-batch row (PartitionKey = job, RowKey = index) is the single source of truth:
each try overwrites it under an ETag condition, so a redelivered message never counts
twice and a worker that lost its claim cannot overwrite the winner's result.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import time
from enum import StrEnum
from typing import Any

from batchfx.errors import ConflictError, InputError, JobNotFoundError, StorageError
from batchfx.isolating import (
    MAX_ISOLATIONS,
    RunTry,
    isolate_mini_batch,
    isolation_stop,
    note_dead_isolation,
    recorded_error,
)
from batchfx.isolation import may_isolate
from batchfx.jobs import get_job, utc_now
from batchfx.mlflow_scoring import SCORE_SCRIPT as MLFLOW_SCORE_SCRIPT
from batchfx.partition import ManifestLine
from batchfx.records import (
    JobRecord,
    JobState,
    ManifestRef,
    MiniBatchRecord,
    MiniBatchStatus,
    decode_message,
    mini_batch_key,
)
from batchfx.result_parts import store_part
from batchfx.scoring.contract import (
    MiniBatchContext,
    ScriptConfig,
    TryError,
    TryOutcome,
    TryPhase,
)
from batchfx.scoring.pool import ScriptPool
from batchfx.spec import JobSpec, split_source_path
from batchfx.staging import (
    changed_local_items,
    download_items,
    local_folder,
    local_items,
    stage_folder,
)
from batchfx.storage import LOCAL, Storage
from batchfx.tabular.batch import TabularBatch
from batchfx.tabular.fetch import fetch_batch
from batchfx.worker_cache import cached_job, manifest_line
from batchfx.worker_outputs import sync_worker_outputs

__all__ = ["ScoreResult", "score_mini_batch"]

logger = logging.getLogger(__name__)


class ScoreResult(StrEnum):
    """What happened to a message."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"
    DEFERRED = "deferred"


def worker_name() -> str:
    """``host:pid`` of this worker process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def score_mini_batch(
    storage: Storage, pool: ScriptPool, text: str, *, message_id: str, dequeue_count: int
) -> ScoreResult:
    """Handle one queue message; raises only for infrastructure errors (the queue retries).

    Many messages are handled at once on one instance (one thread each); ``pool.admit``
    lets a job's mini-batches in two per script process: one running, the next one
    claimed and its inputs staged meanwhile.
    """
    try:
        job_id, index, ref = decode_message(text)
    except ValueError as exc:
        logger.error("dropping a malformed message %s: %s", message_id, exc)
        return ScoreResult.SKIPPED
    try:
        job = cached_job(storage, job_id)
    except JobNotFoundError:
        logger.warning("job %s: unknown, dropping mini-batch %d", job_id, index)
        return ScoreResult.SKIPPED
    spec = JobSpec.from_record(job.spec)
    with pool.admit(job_id, spec.process_count_per_node):
        job = cached_job(storage, job_id)  # it may have ended while this message waited
        if job.state.is_final or job.state is JobState.FINALIZING:
            logger.info("job %s: %s, skipping mini-batch %d", job_id, job.state.value, index)
            return ScoreResult.SKIPPED
        return _score(storage, pool, job, spec, index, ref, text, message_id=message_id,
                      dequeue_count=dequeue_count)


def _score(storage: Storage, pool: ScriptPool, job: JobRecord, spec: JobSpec, index: int,
           ref: ManifestRef, text: str, *, message_id: str, dequeue_count: int) -> ScoreResult:
    job_id = job.job_id
    line = manifest_line(storage, ref)
    record: MiniBatchRecord | None = None
    etag: str | None = None
    claimed = False  # whether this delivery already counted its first try
    if dequeue_count <= 1:
        # A first delivery mostly finds no row: claim by inserting it (a row already there,
        # from a duplicate message, fails the insert and is looked at below).
        record = _new_record(job_id, index, ref, line)
        try:
            etag, claimed = _claim(storage, record, None, message_id, spec), True
        except ConflictError:
            record = None
        except StorageError:
            _release_claim(storage, record)
            raise
    if record is None:
        found = storage.tables.get(storage.settings.minibatches_table, job_id,
                                   mini_batch_key(index))
        if found is not None:
            record = MiniBatchRecord.from_entity(found.values)
            etag = found.etag
            if record.status.is_final:
                logger.info("job %s: mini-batch %d already %s (redelivery %d)", job_id, index,
                            record.status.value, dequeue_count)
                return ScoreResult.DUPLICATE
            wait = record.lease_until - time.time()
            if record.message_id != message_id and wait > 0:
                # A duplicate message while another worker holds a live claim: look again
                # when the claim runs out (a fresh copy, so the retry does not count toward
                # poison).
                storage.queues.send(storage.settings.queue_name, text,
                                    visibility_timeout=min(int(wait) + 1, 7 * 24 * 3600))
                logger.info("job %s: mini-batch %d is held by %s; deferred %ds", job_id, index,
                            record.worker, int(wait) + 1)
                return ScoreResult.DEFERRED
            if not record.isolations:  # while isolating, the row keeps the mini-batch's error
                _note_dead_try(record)
        else:
            record = _new_record(job_id, index, ref, line)
    # Tries used up (or isolation begun): finished, unless the worker isolating its bad
    # items died (go on).
    resume = not claimed and (record.tries >= spec.run_max_try or record.isolations > 0)
    if resume and not 0 < record.isolations < MAX_ISOLATIONS:
        if record.isolations:
            note_dead_isolation(record)
        return _finish(storage, record, etag, None, spec)
    work_dir = os.path.join(storage.settings.work_dir, "minibatches", f"{job_id}-{index}")
    trying = not resume  # whether a try this invocation counted is under way
    try:
        if not resume and not claimed:
            etag = _claim(storage, record, etag, message_id, spec)
        assert etag is not None
        try:
            config, context_inputs = _prepare_script(storage, job, spec)
            inputs = _stage_inputs(storage, line, work_dir)
        except InputError as exc:  # changed since submit or partitioning: no try can succeed
            error = TryError(TryPhase.INPUT, "InputError", str(exc), str(exc))
            failed = TryOutcome.failure(error, record.items, 0.0, worker_name())
            return _finish(storage, record, etag, failed, spec)
        run_try = _try_runner(storage, pool, job, spec, config, line)
        context = MiniBatchContext(job_id, mini_batch_key(index), index, record.tries,
                                   partition_key_value=dict(line.partition_key_value),
                                   side_inputs=context_inputs)
        outcome: TryOutcome | None = None
        while not resume:
            context = dataclasses.replace(context, try_number=record.tries)
            outcome = run_try(inputs, context)
            if (outcome.ok or record.tries >= spec.run_max_try or _not_retried(outcome.error)
                    or _job_ended(storage, job_id)):
                break
            _set_error(record, outcome.error, record.tries)
            logger.warning("job %s: mini-batch %d try %d failed: %s", job_id, index,
                           record.tries, outcome.error)
            etag = _claim(storage, record, etag, message_id, spec)
        failure = outcome.error if outcome is not None else recorded_error(record)
        # The rows the last try read (counted before run(), so a hang or crash has them
        # too); when resuming, the plan's (estimated) count, corrected by the runs.
        total = outcome.items if outcome is not None else _planned(inputs)
        if (failure is not None and (record.tries >= spec.run_max_try
                                     or _not_retried(failure))
                and may_isolate(failure, total) and not _job_ended(storage, job_id)):
            trying = False  # the tries are spent; a successor resumes isolating
            outcome, etag = isolate_mini_batch(
                storage, run_try, record, etag, failure, inputs, total, line, context, spec,
                renew=lambda r, e: _renew(storage, r, e, message_id, spec),
                stop=isolation_stop(lambda: _job_ended(storage, job_id),
                                    spec.run_invocation_timeout))
        return _finish(storage, record, etag, outcome, spec)
    except ConflictError:
        logger.warning("job %s: mini-batch %d was taken over by another worker", job_id, index)
        return ScoreResult.SUPERSEDED
    except StorageError:
        # Storage failed us, the script did not: give the try back before the queue
        # redelivers, so the next delivery does not count it as a dead worker's.
        if trying:
            _release_claim(storage, record)
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _try_runner(storage: Storage, pool: ScriptPool, job: JobRecord, spec: JobSpec,
                config: ScriptConfig, line: ManifestLine) -> RunTry:
    """One try on a free process of the pool, then its custom outputs and log uploaded.

    Local files are read by the script where they are: one changed while run() read it
    fails the try as an input error (no other try can read the listed version)."""
    local = line.container == LOCAL and line.tabular is None

    def run(inputs: list[str] | TabularBatch, context: MiniBatchContext) -> TryOutcome:
        done = pool.run_mini_batch(config, spec.process_count_per_node, inputs, context,
                                   float(spec.run_invocation_timeout))
        sync_worker_outputs(storage, job, done.config, context.mini_batch_id,
                            owner=f"{worker_name()}-p{done.slot}")
        changed = changed_local_items(storage, line.prefix, line.items) if local else ""
        if changed:
            error = TryError(TryPhase.INPUT, "InputError", changed, changed)
            return TryOutcome.failure(error, done.outcome.items, done.outcome.seconds,
                                      done.outcome.worker)
        return done.outcome
    return run


def _new_record(job_id: str, index: int, ref: ManifestRef, line: ManifestLine
                ) -> MiniBatchRecord:
    return MiniBatchRecord(job_id, index, MiniBatchStatus.RUNNING, items=line.item_count,
                           items_planned=line.item_count, manifest=ref.blob,
                           manifest_offset=ref.offset, manifest_length=ref.length)


def _stage_inputs(storage: Storage, line: ManifestLine,
                  work_dir: str) -> list[str] | TabularBatch:
    """Local copies of the mini-batch's inputs: its files, or its tabular slices."""
    if line.tabular is not None:
        return fetch_batch(storage.files(line.container), line.container, line.tabular,
                           work_dir)
    if line.container == LOCAL:  # read in place, as listed
        return local_items(storage, line.prefix, line.items)
    return download_items(storage, line.container, line.prefix, line.items, work_dir)


def _planned(inputs: list[str] | TabularBatch) -> int:
    return inputs.rows if isinstance(inputs, TabularBatch) else len(inputs)


def _not_retried(error: TryError | None) -> bool:
    """Failures another try of the same items would repeat: rows over the output limit
    (isolating then fails only the items that return them)."""
    return error is not None and error.type == "OutputTooLarge"


def _job_ended(storage: Storage, job_id: str) -> bool:
    return get_job(storage, job_id).state.is_final


def _note_dead_try(record: MiniBatchRecord) -> None:
    """The worker that started the last try died: that try counts, with this explanation."""
    record.error_phase = "crash"
    record.error_type = "WorkerLost"
    record.error_message = (
        f"worker {record.worker or '?'} stopped during try {record.tries} without reporting "
        "(process killed, out of memory, or host restarted)")
    record.error_traceback = ""
    record.error_try = record.tries


def _set_error(record: MiniBatchRecord, error: TryError | None, try_number: int) -> None:
    if error is None:
        return
    record.error_phase = error.phase.value
    record.error_type = error.type
    record.error_message = error.message
    record.error_traceback = error.traceback
    record.error_try = try_number


def _claim(storage: Storage, record: MiniBatchRecord, etag: str | None, message_id: str,
           spec: JobSpec) -> str:
    """Start the next try: count it and stamp this worker on the row before any work."""
    record.tries += 1
    record.started = utc_now()
    return _renew(storage, record, etag, message_id, spec)


def _renew(storage: Storage, record: MiniBatchRecord, etag: str | None, message_id: str,
           spec: JobSpec) -> str:
    """Stamp this worker and a fresh lease on the row (a try is counted by ``_claim``)."""
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


def _release_claim(storage: Storage, record: MiniBatchRecord) -> None:
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


def _finish(storage: Storage, record: MiniBatchRecord, etag: str | None,
            outcome: TryOutcome | None, spec: JobSpec) -> ScoreResult:
    """Write the part blob (if any rows) and the final row, conditional on our claim."""
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
            _set_error(record, outcome.error, record.error_try if record.isolations
                       else record.tries)
        if outcome.rows:
            store_part(storage, record, outcome.part, spec.output_format,
                       inline=not outcome.segments)
            if outcome.segments:  # per_input_file: which input file each run of rows is from
                from batchfx.output_files import store_segments

                record.segments = store_segments(storage, record.part, outcome.segments)
    table = storage.settings.minibatches_table
    if etag is None:
        storage.tables.insert(table, record.to_entity())
    else:
        storage.tables.replace(table, record.to_entity(), etag=etag)
    logger.info("job %s: mini-batch %d %s after %d tries (%d/%d items)", record.job_id,
                record.index, record.status.value, record.tries, record.succeeded, record.items)
    return (ScoreResult.SUCCEEDED if record.status is MiniBatchStatus.SUCCEEDED
            else ScoreResult.FAILED)


_staged: dict[tuple[str, str], str] = {}


def _stage(storage: Storage, job: JobRecord, field: str, path: str) -> str:
    """A job's folder on local disk, checked or fetched once per worker process and job:
    a local model or side input is used in place, local code is copied (the script may
    write next to itself), a folder in storage is downloaded."""
    key = (job.job_id, path)
    if key not in _staged:
        container, prefix = split_source_path(field, path)
        pinned = job.extra.get("pins", {}).get(field)
        if container == LOCAL and field != "source_directory":
            _staged[key] = local_folder(storage, prefix, pinned)
        else:
            cache = os.path.join(storage.settings.work_dir, "snapshots")
            _staged[key] = stage_folder(storage, container, prefix, cache, pinned)
    return _staged[key]


def _prepare_script(storage: Storage, job: JobRecord,
                    spec: JobSpec) -> tuple[ScriptConfig, dict[str, str]]:
    """Stage code, model and side inputs (cached per content version) and build the config."""
    if spec.source_directory and spec.entry_script:
        code_dir, entry_script = (_stage(storage, job, "source_directory",
                                         spec.source_directory), spec.entry_script)
    else:  # an MLflow model without a scoring script: batchfx's own, as Azure ML does
        code_dir, entry_script = str(MLFLOW_SCORE_SCRIPT.parent), MLFLOW_SCORE_SCRIPT.name
    model_dir = _stage(storage, job, "model", spec.model) if spec.model else None
    side = {name: _stage(storage, job, f"side_inputs.{name}", path)
            for name, path in spec.side_inputs.items()}
    name = worker_name().replace(":", "-")
    root = os.path.join(storage.settings.work_dir, "workers", job.job_id, name)
    env = dict(spec.environment_variables)
    env.update({f"AZUREML_BI_SIDE_INPUT_{k.upper()}": v for k, v in side.items()})
    config = ScriptConfig(
        code_dir=code_dir,
        entry_script=entry_script,
        model_dir=model_dir,
        output_dir=os.path.join(root, "outputs"),
        arguments=tuple(spec.arguments),
        environment_variables=tuple(sorted(env.items())),
        logging_level=spec.logging_level,
        output_format=spec.output_format,
        append_row_header=spec.append_row_header,
        join_input=spec.join_input,
        per_input_file=spec.output_action == "per_input_file",
        max_output_bytes=int(storage.settings.max_output_mb * 1024 * 1024),
        log_path=os.path.join(root, "logs", f"{name}.log"),
    )
    return config, side
