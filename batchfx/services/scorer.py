"""Scoring a message's mini-batches: claim each one's row, run the script with retries,
record the outcome.

The mini-batch row (PartitionKey = job, RowKey = index) is the single source of truth:
each try overwrites it under an ETag condition (``batchfx.services.claims``), so a redelivered
message never counts twice and a worker that lost its claim cannot overwrite the winner's
result. A message names one or several consecutive mini-batches of a manifest page: one
message spares the queue calls of several, and a message whose mini-batches turn out slow
hands the rest on in a message of their own, so other instances can take them.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import secrets
import shutil
import time
from enum import StrEnum

from batchfx.core.errors import (
    ConflictError,
    DiskFullError,
    InputError,
    JobNotFoundError,
    StorageError,
)
from batchfx.core.isolation import may_isolate
from batchfx.core.packing import ManifestLine
from batchfx.core.records import (
    JobRecord,
    JobState,
    ManifestRef,
    MiniBatchRecord,
    MiniBatchStatus,
    decode_body,
    encode_message,
    mini_batch_key,
)
from batchfx.core.script_contract import MiniBatchContext, TryError, TryOutcome, TryPhase
from batchfx.core.spec import JobSpec
from batchfx.scoring.pool import PoolDraining, ScriptPool
from batchfx.services.claims import (
    Attempt,
    new_record,
    note_dead_try,
    set_error,
    worker_name,
)
from batchfx.services.environment_builder import EnvironmentBuildError
from batchfx.services.isolation_runs import (
    MAX_ISOLATIONS,
    isolate_mini_batch,
    isolation_stop,
    note_dead_isolation,
    recorded_error,
)
from batchfx.services.jobs import get_job
from batchfx.services.scorer_cache import cached_job, job_spec, manifest_lines
from batchfx.services.script_setup import prepare_script, stage_inputs, try_runner
from batchfx.services.work_folders import ended_jobs_of, sweep_now_and_then
from batchfx.storage import Storage
from batchfx.tabular.batch import TabularBatch

__all__ = ["HAND_ON_AFTER_S", "ScoreResult", "score_message"]

logger = logging.getLogger(__name__)

# A message still holding mini-batches after this long sends them on in a message of their
# own (other instances may be idle) instead of scoring them one after the other.
HAND_ON_AFTER_S = 5.0


class ScoreResult(StrEnum):
    """What happened to one mini-batch of a message."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"
    DEFERRED = "deferred"
    HANDED_ON = "handed on"


def score_message(storage: Storage, pool: ScriptPool, text: str, *, message_id: str,
                  dequeue_count: int, hand_on_after_s: float = HAND_ON_AFTER_S
                  ) -> list[ScoreResult]:
    """Handle one queue message, mini-batch after mini-batch; raises only for
    infrastructure errors (the queue delivers the message again). Mini-batches still
    waiting after ``hand_on_after_s`` go on in a message of their own.

    Many messages are handled at once on one instance (one thread each); ``pool.admit``
    lets a job's mini-batches in two per script process: one running, the next one
    claimed and its inputs staged meanwhile.
    """
    sweep_now_and_then(storage.settings.work_dir, ended_jobs_of(storage),
                       storage.settings.work_dir_max_mb)
    try:
        body = decode_body(text)
    except ValueError as exc:
        logger.error("dropping a malformed message %s: %s", message_id, exc)
        return [ScoreResult.SKIPPED]
    try:
        job = cached_job(storage, body.job_id)
    except JobNotFoundError:
        logger.warning("job %s: unknown, dropping mini-batches from %d", body.job_id,
                       body.index)
        return [ScoreResult.SKIPPED]
    spec = job_spec(job)
    lines = manifest_lines(storage, body.ref)
    started = time.monotonic()
    results: list[ScoreResult] = []
    for position, (line, ref) in enumerate(lines):
        rest = len(lines) - position
        if pool.draining or (position and rest > 1
                             and time.monotonic() - started > hand_on_after_s):
            _hand_on(storage, job.job_id, lines[position:])
            return results + [ScoreResult.HANDED_ON] * rest
        try:
            with pool.admit(job.job_id, spec.process_count_per_node):
                job = cached_job(storage, job.job_id)  # it may have ended while this waited
                if job.state.is_final or job.state is JobState.FINALIZING:
                    logger.info("job %s: %s, skipping mini-batch %d", job.job_id,
                                job.state.value, line.index)
                    results.append(ScoreResult.SKIPPED)
                    continue
                results.append(_score(storage, pool, job, spec, line, ref,
                                      message_id=message_id, dequeue_count=dequeue_count))
        except PoolDraining:  # stopping: this one (its try given back) and the rest go on
            _hand_on(storage, job.job_id, lines[position:])
            return results + [ScoreResult.HANDED_ON] * rest
    return results


def _hand_on(storage: Storage, job_id: str, rest: list[tuple[ManifestLine, ManifestRef]]
             ) -> None:
    first, last = rest[0][1], rest[-1][1]
    ref = ManifestRef(first.blob, first.offset, last.offset + last.length - first.offset)
    storage.queues.send(storage.settings.queue_name,
                        encode_message(job_id, rest[0][0].index, ref, len(rest)))
    logger.info("job %s: mini-batches %d-%d handed on in a message of their own", job_id,
                rest[0][0].index, rest[-1][0].index)


def _defer(storage: Storage, record: MiniBatchRecord, ref: ManifestRef, wait: float) -> None:
    """Look at the mini-batch again when another worker's claim runs out (a message of its
    own, fresh, so the retry does not count toward poison)."""
    storage.queues.send(storage.settings.queue_name,
                        encode_message(record.job_id, record.index, ref),
                        visibility_timeout=min(int(wait) + 1, 7 * 24 * 3600))
    logger.info("job %s: mini-batch %d is held by %s; deferred %ds", record.job_id,
                record.index, record.worker, int(wait) + 1)


def _score(storage: Storage, pool: ScriptPool, job: JobRecord, spec: JobSpec,
           line: ManifestLine, ref: ManifestRef, *, message_id: str,
           dequeue_count: int) -> ScoreResult:
    """One mini-batch of a message: take it in hand (``_take``), run its tries and
    isolation (``_run``), and say what became of it."""
    taken = _take(storage, spec, job.job_id, line, ref, message_id, dequeue_count)
    if isinstance(taken, ScoreResult):
        return taken
    attempt, claimed = taken
    record = attempt.record
    # Tries used up (or isolation begun): finished, unless the worker isolating its bad
    # items died (go on).
    resume = not claimed and (record.tries >= spec.run_max_try or record.isolations > 0)
    if resume and not 0 < record.isolations < MAX_ISOLATIONS:
        if record.isolations:
            note_dead_isolation(record)
        return _result(attempt.finish(None))
    # Its own folder per delivery: two deliveries of one message (a lease that ran out) may
    # stage the same mini-batch at once on this instance, and each removes its folder.
    work_dir = os.path.join(storage.settings.work_dir, "minibatches",
                            f"{job.job_id}-{line.index}-{secrets.token_hex(4)}")
    trying = not resume  # whether a try this invocation counted is under way
    try:
        if not resume and not claimed:
            attempt.claim()
        return _run(storage, pool, job, spec, line, attempt, work_dir, resume)
    except ConflictError:
        logger.warning("job %s: mini-batch %d was taken over by another worker", job.job_id,
                       line.index)
        return ScoreResult.SUPERSEDED
    except (PoolDraining, StorageError):
        # Storage failed us, or the instance is stopping, before the script did: the try is
        # given back, so the next delivery does not count it as a dead worker's. (While
        # isolating the tries are spent and the row says how far it got.)
        if trying and not record.isolations:
            attempt.release()
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _take(storage: Storage, spec: JobSpec, job_id: str, line: ManifestLine, ref: ManifestRef,
          message_id: str, dequeue_count: int) -> tuple[Attempt, bool] | ScoreResult:
    """The mini-batch in this worker's hands, claimed (``True``) when this is its first
    delivery, else its row as found: DUPLICATE when it is finished, DEFERRED while another
    worker's claim lives."""
    if dequeue_count <= 1:
        # A first delivery mostly finds no row: claim by inserting it (a row already there,
        # from a duplicate message, fails the insert and is looked at below).
        attempt = Attempt(storage, spec, message_id, new_record(job_id, line.index, ref, line))
        try:
            attempt.claim()
            return attempt, True
        except ConflictError:
            pass
        except StorageError:
            attempt.release()
            raise
    found = storage.tables.get(storage.settings.minibatches_table, job_id,
                               mini_batch_key(line.index))
    if found is None:
        return Attempt(storage, spec, message_id,
                       new_record(job_id, line.index, ref, line)), False
    record = MiniBatchRecord.from_entity(found.values)
    if record.status.is_final:
        logger.info("job %s: mini-batch %d already %s (redelivery %d)", job_id, line.index,
                    record.status.value, dequeue_count)
        return ScoreResult.DUPLICATE
    wait = record.lease_until - time.time()
    if record.message_id != message_id and wait > 0:
        _defer(storage, record, ref, wait)  # another worker holds a live claim
        return ScoreResult.DEFERRED
    if not record.isolations:  # while isolating, the row keeps the mini-batch's error
        note_dead_try(record)
    return Attempt(storage, spec, message_id, record, found.etag), False


def _run(storage: Storage, pool: ScriptPool, job: JobRecord, spec: JobSpec,
         line: ManifestLine, attempt: Attempt, work_dir: str, resume: bool) -> ScoreResult:
    """Stage the inputs, run the tries left (or resume isolating), isolate the bad items
    of a mini-batch that used its tries up, and write the outcome."""
    record = attempt.record
    try:
        config, context_inputs = prepare_script(storage, job, spec)
        inputs = stage_inputs(storage, line, work_dir)
    except InputError as exc:  # changed since submit or partitioning: no try can succeed
        error = TryError(TryPhase.INPUT, "InputError", str(exc), str(exc))
        return _result(attempt.finish(TryOutcome.failure(error, record.items, 0.0,
                                                         worker_name())))
    except EnvironmentBuildError as exc:  # pip's error: the job fails with it, at once
        error = TryError(TryPhase.LOAD, "EnvironmentBuildError", str(exc), str(exc))
        return _result(attempt.finish(TryOutcome.failure(error, record.items, 0.0,
                                                         worker_name())))
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        return _disk_full(attempt, exc)
    run_try = try_runner(storage, pool, job, spec, config, line)
    context = MiniBatchContext(job.job_id, mini_batch_key(line.index), line.index,
                               record.tries, partition_key_value=dict(line.partition_key_value),
                               side_inputs=context_inputs)
    outcome: TryOutcome | None = None
    while not resume:
        context = dataclasses.replace(context, try_number=record.tries)
        outcome = run_try(inputs, context)
        if (outcome.ok or record.tries >= spec.run_max_try or _not_retried(outcome.error)
                or _job_ended(storage, job.job_id)):
            break
        set_error(record, outcome.error, record.tries)
        logger.warning("job %s: mini-batch %d try %d failed: %s", job.job_id, line.index,
                       record.tries, outcome.error)
        attempt.claim()
    failure = outcome.error if outcome is not None else recorded_error(record)
    # The rows the last try read (counted before run(), so a hang or crash has them too);
    # when resuming, the plan's (estimated) count, corrected by the runs.
    total = outcome.items if outcome is not None else _planned(inputs)
    if (failure is not None and (record.tries >= spec.run_max_try or _not_retried(failure))
            and may_isolate(failure, total) and not _job_ended(storage, job.job_id)):
        # The tries are spent: a successor resumes isolating from the row.
        outcome = isolate_mini_batch(
            attempt, run_try, failure, inputs, total, line, context,
            isolation_stop(lambda: _job_ended(storage, job.job_id),
                           spec.run_invocation_timeout))
    return _result(attempt.finish(outcome))


def _disk_full(attempt: Attempt, exc: OSError) -> ScoreResult:
    """Staging filled this worker's disk: the try fails saying so (never "worker lost").
    With tries left the message comes back, perhaps to a machine with room."""
    record, folder = attempt.record, attempt.storage.settings.work_dir
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.0f} MB free"
    except OSError:
        free = "free space unknown"
    message = (f"no space left on the disk of worker {worker_name()} while staging the "
               f"mini-batch ({exc.filename or folder}: {exc.strerror}; {folder} has {free}); "
               "free space there or point BATCHFX_WORK_DIR at a larger disk")
    error = TryError(TryPhase.INPUT, "NoSpaceLeft", message, message)
    if record.tries >= attempt.spec.run_max_try:
        return _result(attempt.finish(TryOutcome.failure(error, record.items, 0.0,
                                                         worker_name())))
    set_error(record, error, record.tries)
    attempt.renew()  # the reason stays with the try it ended
    logger.error("job %s: mini-batch %d: %s", record.job_id, record.index, message)
    raise DiskFullError(message)


def _result(status: MiniBatchStatus) -> ScoreResult:
    return ScoreResult.SUCCEEDED if status is MiniBatchStatus.SUCCEEDED else ScoreResult.FAILED


def _planned(inputs: list[str] | TabularBatch) -> int:
    return inputs.rows if isinstance(inputs, TabularBatch) else len(inputs)


def _not_retried(error: TryError | None) -> bool:
    """Failures another try of the same items would repeat: rows over the output limit
    (isolating then fails only the items that return them)."""
    return error is not None and error.type == "OutputTooLarge"


def _job_ended(storage: Storage, job_id: str) -> bool:
    return get_job(storage, job_id).state.is_final
