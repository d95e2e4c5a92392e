"""Ending a job: the append_row file, the summary, the per-mini-batch report, the errors."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

from batchfx.core.errors import JobStateError, OutputError, StorageError
from batchfx.core.final_tally import FinalTally, final_reason, final_tally
from batchfx.core.output_layout import REPORT_FILES
from batchfx.core.packing import item_name, parse_manifest_line
from batchfx.core.progress import Progress, Thresholds
from batchfx.core.records import PART_PROPERTIES, JobRecord, JobState, MiniBatchRecord
from batchfx.core.reports import (
    error_details,
    errors_csv,
    job_result_text,
    processed_mini_batches_csv,
)
from batchfx.core.spec import JobSpec
from batchfx.services.isolation_runs import load_item_errors
from batchfx.services.job_transitions import end_job, keep_outcome, start_finalizing
from batchfx.services.jobs import elapsed_seconds, get_job, job_progress, job_view
from batchfx.services.output_writer import write_job_outputs
from batchfx.services.reuse import copy_outputs, remember_result
from batchfx.services.run_metrics import write_metrics
from batchfx.services.script_outputs import custom_output_problems
from batchfx.storage import Storage

__all__ = ["finalize_job", "write_progress_overview"]

logger = logging.getLogger(__name__)


def _records(storage: Storage, job_id: str) -> list[MiniBatchRecord]:
    # Without the inline parts (a job's can add up to hundreds of MB): the output is
    # written from a stream of them (result_parts.PartReader).
    rows = storage.tables.query(storage.settings.minibatches_table, job_id,
                                select=MiniBatchRecord.columns(without=PART_PROPERTIES))
    records = [MiniBatchRecord.from_entity(r) for r in rows]
    records.sort(key=lambda r: r.index)
    return records


def _manifest_lines(storage: Storage, job: JobRecord
                    ) -> Iterator[tuple[int, tuple[list[str], int]]]:
    """(index, (item names, item count)) of every mini-batch, read page by page.

    For files an item is a file; for tabular inputs the names are slices and the count is
    rows (estimated for text files cut by bytes).
    """
    container = storage.settings.jobs_container
    for page in range(job.partitioning.pages):
        blob = f"jobs/{job.job_id}/manifests/page-{page:06d}.jsonl"
        if not storage.blobs.exists(container, blob):
            continue  # a page that listed no files
        for raw in storage.blobs.download(container, blob).splitlines():
            if raw.strip():
                line = parse_manifest_line(raw)
                yield line.index, ([item_name(line, i.name) for i in line.items],
                                   line.item_count)


def _write_outputs(storage: Storage, job: JobRecord, spec: JobSpec,
                   records: list[MiniBatchRecord]) -> int:
    """The rows' files (none for summary_only): the rows written. OutputError also for lost
    custom outputs."""
    names: list[str] = []
    rows = 0
    if spec.output_action != "summary_only":
        names, rows = write_job_outputs(storage, job, spec, records)
        logger.info("job %s: wrote %d rows to %d files (%s)", job.job_id, rows, len(names),
                    spec.output_action)
    problems = custom_output_problems(storage, job, [*names, *REPORT_FILES])
    if problems:
        raise OutputError("; ".join(problems))
    return rows


def _write_reports(storage: Storage, job: JobRecord, final: FinalTally,
                   names: dict[int, list[str]]) -> None:
    """Every report file, from the one final tally."""
    records = [r for r in final.records if r.status.is_final]
    failures = [(r, names.get(r.index, [])) for r in records if r.failed]
    isolated = load_item_errors(storage, records)
    files: dict[str, str] = {
        "processed_mini-batches.csv": processed_mini_batches_csv(final.records,
                                                                 final.never_run),
        "errors.csv": errors_csv(failures, isolated),
        "errors.txt": error_details(records, isolated),
        "job_result.txt": job_result_text(job, final, Thresholds.from_spec(job.spec)),
    }
    for name, text in files.items():
        storage.blobs.upload(job.output_container, f"{job.output_prefix}/{name}", text.encode())


def write_progress_overview(storage: Storage, job: JobRecord,
                            progress: Progress | None = None) -> dict[str, Any]:
    """``progress_overview.json`` next to the output: the same view as ``GET /api/jobs/{id}``
    (``progress``: already summed, to spare reading every mini-batch row again; an ended
    job's view shows its final tally)."""
    import json

    if progress is None and not job.outcome.final:
        progress = job_progress(storage, job)
    view = job_view(job, progress)
    storage.blobs.upload(job.output_container, f"{job.output_prefix}/progress_overview.json",
                         json.dumps(view, indent=2).encode())
    return view


def _finish_reused(storage: Storage, job: JobRecord) -> str:
    """Complete a job by copying the results of the earlier identical job it reuses."""
    earlier = get_job(storage, job.reuse.reused_from)
    job = start_finalizing(storage, job.job_id, allowed_from=[JobState.RUNNING])
    copy_outputs(storage, earlier, job)
    reason = (f"reused the results of job {earlier.job_id}: same inputs (ETags), code, model "
              "and settings (allow_reuse)")
    try:
        job = end_job(storage, job.job_id, JobState.COMPLETED, reason=reason,
                      allowed_from=[JobState.FINALIZING])
    except JobStateError:
        job = get_job(storage, job.job_id)
    # The earlier job's tally: its reports were copied with its outputs.
    records = _records(storage, earlier.job_id)
    earlier_final = earlier.outcome.final or {}
    rows = int(earlier_final.get("rows_written", sum(r.rows for r in records)))
    return _end(storage, job, records, dict(_manifest_lines(storage, earlier)), rows)


def _end(storage: Storage, job: JobRecord, records: list[MiniBatchRecord],
         manifest: dict[int, tuple[list[str], int]] | None, rows_written: int) -> str:
    """Freeze the ended job's tally, write every report from it, and keep it with the job."""
    if manifest is None:
        try:
            manifest = dict(_manifest_lines(storage, job))
        except StorageError:
            raise  # storage unreachable: the activity is tried again
        except Exception:  # a job must end even then: its reports name no items
            logger.exception("job %s: reading its manifest failed", job.job_id)
            manifest = {}
    final = final_tally(job, records, {i: n for i, (_, n) in manifest.items()},
                        rows_written=rows_written, elapsed_s=elapsed_seconds(job))
    reason = final_reason(job, final)  # an abort's counts as the reports count them
    changed = reason if reason != job.reason else None
    outcome = dataclasses.replace(job.outcome, outputs_ready=True, final=final.counts())
    try:
        ended = dataclasses.replace(job, outcome=outcome, reason=reason)
        _write_reports(storage, ended, final, {i: names for i, (names, _) in manifest.items()})
        metrics = write_metrics(storage, job)
        if metrics:
            outcome = dataclasses.replace(outcome, metrics=metrics)
        write_progress_overview(storage, dataclasses.replace(ended, outcome=outcome))
    except StorageError:
        raise  # storage unreachable: the activity is tried again
    except Exception as exc:  # a job must end even when its reports cannot be written
        logger.exception("job %s: writing the reports failed", job.job_id)
        outcome = dataclasses.replace(
            outcome, reports_error=f"{type(exc).__name__}: {str(exc)[:500]}")
    # Clients wait for outputs_ready, not only the state: the reports exist once it is set
    # (or reports_error says why they do not).
    job = keep_outcome(storage, job.job_id, job.state, outcome, reason=changed)
    if job.state is JobState.COMPLETED and job.reuse.key:
        remember_result(storage, job.reuse.key, job)
    logger.info("job %s: ended as %s (%s)", job.job_id, job.state.value, job.reason)
    return job.state.value


def finalize_job(storage: Storage, job_id: str, outcome: JobState, reason: str = "") -> str:
    """End a job as ``outcome``; for ``completed`` assemble the append_row file first.

    A job already ended (canceled while running) keeps its state; its reports are
    still written. Every report comes from the rows read once the job's state is final
    (``final_tally``). Returns the final state.
    """
    job = get_job(storage, job_id)
    active = [s for s in JobState if not s.is_final]
    if outcome is JobState.COMPLETED and not job.state.is_final and job.reuse.reused_from:
        return _finish_reused(storage, job)
    rows_written = 0
    if outcome is JobState.COMPLETED and not job.state.is_final:
        job = start_finalizing(storage, job_id, allowed_from=active)
        spec = JobSpec.from_record(job.spec)
        records = _records(storage, job_id)
        try:
            rows_written = _write_outputs(storage, job, spec, records)
            final, why = JobState.COMPLETED, reason or "every mini-batch finished"
        except OutputError as exc:
            final, why = JobState.FAILED, f"assembling the output failed: {exc}"
        except StorageError:
            raise  # storage unreachable: the activity is tried again
        except Exception as exc:  # never leave a job finalizing: it ends, saying why
            logger.exception("job %s: assembling the output failed", job_id)
            final, why = JobState.FAILED, (f"assembling the output failed: "
                                           f"{type(exc).__name__}: {exc}")
        try:
            job = end_job(storage, job_id, final, reason=why,
                          allowed_from=[JobState.FINALIZING])
        except JobStateError:
            job = get_job(storage, job_id)
        if final is JobState.FAILED:
            rows_written = 0  # what was written is not the job's output
    elif not job.state.is_final:
        try:
            job = end_job(storage, job_id, outcome, reason=reason, allowed_from=active,
                          error=reason if outcome is JobState.FAILED else None)
        except JobStateError:
            job = get_job(storage, job_id)
        records = _records(storage, job_id)
    else:
        records = _records(storage, job_id)
    return _end(storage, job, records, None, rows_written)
