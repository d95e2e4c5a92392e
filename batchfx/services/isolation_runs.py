"""The scorer's side of isolating bad items (see :mod:`batchfx.core.isolation` for the method).

Each isolation run is stamped on the mini-batch row first (ETag-conditional, the lease
renewed), so a redelivered message waits for it and a worker that lost the row stops.
The failed items, each with its error and try count, go to a blob next to the results
that the errors file lists (a table property could not hold thousands of them).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from batchfx.core.errors import OutputError
from batchfx.core.isolation import Isolation, ItemFailure, Span, combine, isolate
from batchfx.core.packing import ManifestLine, item_name
from batchfx.core.records import MiniBatchRecord, mini_batch_key
from batchfx.core.script_contract import (
    MiniBatchContext,
    TryError,
    TryOutcome,
    TryPhase,
)
from batchfx.services.claims import Attempt
from batchfx.storage import Storage
from batchfx.tabular.batch import TabularBatch

__all__ = [
    "ISOLATION_BUDGET_S",
    "MAX_ISOLATIONS",
    "RunTry",
    "isolate_mini_batch",
    "isolation_stop",
    "item_error_entries",
    "load_item_errors",
    "note_dead_isolation",
    "recorded_error",
]

logger = logging.getLogger(__name__)

# One try of the script on some of a mini-batch's inputs (the scorer's, through its pool).
RunTry = Callable[[list[str] | TabularBatch, MiniBatchContext], TryOutcome]

# A worker that dies while isolating (the item may be what kills it) gets one successor.
MAX_ISOLATIONS = 2


def _subset(inputs: list[str] | TabularBatch, span: Span) -> list[str] | TabularBatch:
    if isinstance(inputs, TabularBatch):
        rows = span.planned(inputs.rows)
        return dataclasses.replace(inputs, window=(span.start, span.stop), rows=rows)
    return inputs[span.start:span.stop]


def isolate_mini_batch(attempt: Attempt, run_try: RunTry, error: TryError,
                       inputs: list[str] | TabularBatch, total: int, line: ManifestLine,
                       context: MiniBatchContext, stop: Callable[[], str]) -> TryOutcome:
    """Run the spans of a mini-batch that used up its tries; their combined outcome (the
    attempt's row is renewed before each run, so its ETag follows).

    ``total`` is the mini-batch's items (for tabular inputs the rows read, or planned).
    ``stop()`` says why not to start another run ("" to go on).
    ``run_try(inputs, context)`` runs one try of the script on a subset of the inputs.
    A renewal raises ConflictError when another worker took the mini-batch.
    """
    storage, record, spec = attempt.storage, attempt.record, attempt.spec
    record.isolations += 1
    # The last try's error (the loop stops before recording it): a successor that resumes
    # isolating after this worker died compares the halves' errors with it.
    record.error_phase, record.error_type = error.phase.value, error.type
    record.error_message, record.error_traceback = error.message, error.traceback
    record.error_try = record.tries
    attempt.renew()
    started = time.monotonic()

    def run(span: Span) -> TryOutcome:
        record.isolation_runs += 1
        attempt.renew()
        span_context = dataclasses.replace(context, try_number=record.tries + span.depth)
        outcome = run_try(_subset(inputs, span), span_context)
        logger.info("job %s: mini-batch %d: isolation run %d on items %d-%s: %s",
                    record.job_id, record.index, record.isolation_runs, span.start,
                    "end" if span.stop is None else span.stop - 1,
                    "ok" if outcome.ok else outcome.error)
        return outcome

    found = isolate(total, error, run, tries=record.tries, stop=stop)
    seconds = time.monotonic() - started
    try:
        outcome = combine(found, spec.output_format, seconds, worker_of(found, record),
                          file_inputs=not isinstance(inputs, TabularBatch))
    except OutputError as exc:
        failure = TryError(TryPhase.RETURN, "OutputError", str(exc), str(exc))
        outcome = TryOutcome.failure(failure, total, seconds, record.worker)
        found = Isolation(failures=[ItemFailure(0, total, failure, record.tries, False)],
                          runs=found.runs, gave_up=str(exc))
    entries = item_error_entries(found, record, line)
    if found.failures:
        record.error_try = found.failures[0].tries
    if entries:
        record.item_errors = (f"jobs/{record.job_id}/item-errors/"
                              f"{mini_batch_key(record.index)}-t{record.tries}"
                              f"-i{record.isolations}.json")
        storage.blobs.upload(storage.settings.jobs_container, record.item_errors,
                             json.dumps(entries, indent=1).encode())
    logger.warning("job %s: mini-batch %d isolated in %d runs: %d items scored, %d failed%s",
                   record.job_id, record.index, found.runs, outcome.succeeded,
                   outcome.failed, f" ({found.gave_up})" if found.gave_up else "")
    return outcome


# Isolation stops starting runs that could end after this long (the Functions host cuts an
# invocation at host.json's functionTimeout, 30 minutes, which the tries share).
ISOLATION_BUDGET_S = 15 * 60


def isolation_stop(job_ended: Callable[[], bool], run_timeout_s: float) -> Callable[[], str]:
    """``stop()`` for :func:`isolate`: the job ended, or no time is left for another run."""
    deadline = time.monotonic() + ISOLATION_BUDGET_S

    def stop() -> str:
        if job_ended():
            return "the job ended while isolating"
        if time.monotonic() + run_timeout_s > deadline:
            return (f"isolation time spent ({ISOLATION_BUDGET_S // 60} minutes, within the "
                    "host's functionTimeout)")
        return ""
    return stop


def recorded_error(record: MiniBatchRecord) -> TryError:
    """The error of the mini-batch's last try, as the row keeps it."""
    phase = TryPhase(record.error_phase) if record.error_phase else TryPhase.RUN
    return TryError(phase, record.error_type or "Error", record.error_message,
                    record.error_traceback)


def note_dead_isolation(record: MiniBatchRecord) -> None:
    """Every worker that isolated the mini-batch's items died: its items count as failed."""
    record.error_message = (
        f"{record.error_type}: {record.error_message} — and the workers isolating its bad "
        f"items stopped without reporting {record.isolations} times (last: "
        f"{record.worker or '?'}), so every item counts as failed")
    record.error_type = "WorkerLost"
    record.error_phase = "crash"


def worker_of(found: Isolation, record: MiniBatchRecord) -> str:
    """The script worker that scored the spans (the last one to report)."""
    workers = [o.worker for _, o in found.succeeded if o.worker]
    return workers[-1] if workers else record.worker


def _names(line: ManifestLine, failure: ItemFailure) -> list[tuple[str, int]]:
    """(item name, items it stands for): files one by one, rows as a range of slices."""
    if line.tabular is None:
        refs = line.items[failure.position:failure.position + failure.count]
        return [(item_name(line, ref.name), 1) for ref in refs]
    slices = ", ".join(item_name(line, ref.name) for ref in line.items[:3])
    more = f" and {len(line.items) - 3} more slices" if len(line.items) > 3 else ""
    last = failure.position + failure.count - 1
    rows = (f"row {failure.position}" if failure.count == 1
            else f"rows {failure.position}-{last}")
    return [(f"{rows} of mini-batch {mini_batch_key(line.index)} ({slices}{more})",
             failure.count)]


def item_error_entries(found: Isolation, record: MiniBatchRecord,
                       line: ManifestLine) -> list[dict[str, Any]]:
    """The item-errors blob: one entry per failed file (or row range), in input order."""
    entries: list[dict[str, Any]] = []
    for span, outcome in found.succeeded:
        if outcome.failed:  # run() returned fewer rows than the span had items
            last = "end" if span.stop is None else span.stop - 1
            entries.append({
                "item": "", "items": outcome.failed, "position": span.start,
                "mini_batch_id": mini_batch_key(record.index), "tries": record.tries + span.depth,
                "phase": "return", "error_type": "MissingResults", "error": "",
                "traceback": "",
                "reason": (f"run() returned {outcome.rows} results for the {outcome.items} "
                           f"items {span.start}-{last} scored apart; {outcome.failed} count "
                           "as failed")})
    for failure in found.failures:
        if failure.alone:
            reason = ("failed on its own after its mini-batch was split to isolate bad "
                      "items")
        else:
            reason = f"not isolated: {found.gave_up or 'failed with its span'}"
        for name, count in _names(line, failure):
            entries.append({
                "item": name,
                "items": count,
                "position": failure.position,
                "mini_batch_id": mini_batch_key(record.index),
                "tries": failure.tries,
                "phase": failure.error.phase.value,
                "error_type": failure.error.type,
                "error": failure.error.message[:2000],
                "traceback": failure.error.traceback[-8000:],
                "reason": reason,
            })
    entries.sort(key=lambda entry: int(entry["position"]))
    return entries


def load_item_errors(storage: Storage,
                     records: Iterable[MiniBatchRecord]) -> dict[int, list[dict[str, Any]]]:
    """Item errors of every isolated mini-batch, by mini-batch index."""
    found: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        if record.item_errors:
            data = storage.blobs.download(storage.settings.jobs_container, record.item_errors)
            found[record.index] = list(json.loads(data))
    return found
