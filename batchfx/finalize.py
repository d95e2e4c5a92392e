"""Ending a job: the append_row file, the summary, the per-mini-batch report, the errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from batchfx.errors import JobStateError, OutputError, StorageError
from batchfx.isolating import load_item_errors
from batchfx.jobs import get_job, job_progress, job_view, transition_job
from batchfx.output_files import write_job_outputs
from batchfx.output_layout import REPORT_FILES
from batchfx.partition import item_name, parse_manifest_line
from batchfx.progress import Progress, Thresholds
from batchfx.records import PART_PROPERTIES, JobRecord, JobState, MiniBatchRecord
from batchfx.reports import (
    error_details,
    errors_csv,
    job_result_text,
    processed_mini_batches_csv,
)
from batchfx.reuse import copy_outputs, remember_result
from batchfx.run_metrics import write_metrics
from batchfx.spec import JobSpec
from batchfx.storage import Storage
from batchfx.worker_outputs import custom_output_problems

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
    for page in range(int(job.extra.get("pages", 0))):
        blob = f"jobs/{job.job_id}/manifests/page-{page:06d}.jsonl"
        if not storage.blobs.exists(container, blob):
            continue  # a page that listed no files
        for raw in storage.blobs.download(container, blob).splitlines():
            if raw.strip():
                line = parse_manifest_line(raw)
                yield line.index, ([item_name(line, i.name) for i in line.items],
                                   line.item_count)


def _write_outputs(storage: Storage, job: JobRecord, spec: JobSpec,
                   records: list[MiniBatchRecord]) -> None:
    """The rows' files (none for summary_only); OutputError also for lost custom outputs."""
    names: list[str] = []
    if spec.output_action != "summary_only":
        names, rows = write_job_outputs(storage, job, spec, records)
        logger.info("job %s: wrote %d rows to %d files (%s)", job.job_id, rows, len(names),
                    spec.output_action)
    problems = custom_output_problems(storage, job, [*names, *REPORT_FILES])
    if problems:
        raise OutputError("; ".join(problems))


def _write_reports(storage: Storage, job: JobRecord, records: list[MiniBatchRecord]) -> None:
    items = dict(_manifest_lines(storage, job))
    seen = {r.index for r in records}
    never_run = {i: count for i, (_, count) in items.items() if i not in seen}
    failures = [(r, items.get(r.index, ([], 0))[0]) for r in records if r.failed]
    isolated = load_item_errors(storage, records)
    out = job.output_container
    files: dict[str, str] = {
        "processed_mini-batches.csv": processed_mini_batches_csv(records, never_run),
        "errors.csv": errors_csv(failures, isolated),
        "errors.txt": error_details(records, isolated),
    }
    for name, text in files.items():
        storage.blobs.upload(out, f"{job.output_prefix}/{name}", text.encode())


def _write_summary(storage: Storage, job: JobRecord) -> Progress:
    # Every row read again: exact, and kept, so the job's view reads nothing more.
    progress = job_progress(storage, job, keep=True, full=True)
    text = job_result_text(job, progress, Thresholds.from_spec(job.spec))
    storage.blobs.upload(job.output_container, f"{job.output_prefix}/job_result.txt",
                         text.encode())
    write_progress_overview(storage, job, progress)
    return progress


def write_progress_overview(storage: Storage, job: JobRecord,
                            progress: Progress | None = None) -> dict[str, Any]:
    """``progress_overview.json`` next to the output: the same view as ``GET /api/jobs/{id}``
    (``progress``: already summed, to spare reading every mini-batch row again)."""
    import json

    view = job_view(job, progress or job_progress(storage, job))
    storage.blobs.upload(job.output_container, f"{job.output_prefix}/progress_overview.json",
                         json.dumps(view, indent=2).encode())
    return view


def _finish_reused(storage: Storage, job: JobRecord) -> str:
    """Complete a job by copying the results of the earlier identical job it reuses."""
    earlier = get_job(storage, str(job.extra["reused_from"]))
    job = transition_job(storage, job.job_id, JobState.FINALIZING,
                         allowed_from=[JobState.RUNNING])
    copy_outputs(storage, earlier, job)
    reason = (f"reused the results of job {earlier.job_id}: same inputs (ETags), code, model "
              "and settings (allow_reuse)")
    try:
        job = transition_job(storage, job.job_id, JobState.COMPLETED,
                             allowed_from=[JobState.FINALIZING], reason=reason)
    except JobStateError:
        job = get_job(storage, job.job_id)
    _write_summary(storage, job)
    job = transition_job(storage, job.job_id, job.state,
                         extra=dict(job.extra, outputs_ready=True))
    return job.state.value


def finalize_job(storage: Storage, job_id: str, outcome: JobState, reason: str = "") -> str:
    """End a job as ``outcome``; for ``completed`` assemble the append_row file first.

    A job already ended (canceled while running) keeps its state; its reports are
    still written. Returns the final state.
    """
    job = get_job(storage, job_id)
    active = [s for s in JobState if not s.is_final]
    if outcome is JobState.COMPLETED and not job.state.is_final and job.extra.get("reused_from"):
        return _finish_reused(storage, job)
    if outcome is JobState.COMPLETED and not job.state.is_final:
        job = transition_job(storage, job_id, JobState.FINALIZING, allowed_from=active)
        spec = JobSpec.from_record(job.spec)
        records = _records(storage, job_id)
        try:
            _write_outputs(storage, job, spec, records)
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
            job = transition_job(storage, job_id, final, allowed_from=[JobState.FINALIZING],
                                 reason=why)
        except JobStateError:
            job = get_job(storage, job_id)
    elif not job.state.is_final:
        try:
            job = transition_job(storage, job_id, outcome, allowed_from=active, reason=reason,
                                 error=reason if outcome is JobState.FAILED else job.error)
        except JobStateError:
            job = get_job(storage, job_id)
        records = _records(storage, job_id)
    else:
        records = _records(storage, job_id)
    extra = dict(job.extra, outputs_ready=True)
    try:
        _write_reports(storage, job, records)
        metrics = write_metrics(storage, job)
        if metrics:
            extra["metrics"] = metrics
        final_counts = _write_summary(storage, job).to_dict()
        # The ended job's counts, kept with it: `batchfx list` shows them without a read.
        extra["counts"] = {"items": final_counts["items"],
                           "mini_batches": final_counts["mini_batches"]}
    except StorageError:
        raise  # storage unreachable: the activity is tried again
    except Exception as exc:  # a job must end even when its reports cannot be written
        logger.exception("job %s: writing the reports failed", job_id)
        extra["reports_error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
    # Clients wait for this flag, not only the state: the reports exist once it is set
    # (or reports_error says why they do not).
    job = transition_job(storage, job_id, job.state, extra=extra)
    if job.state is JobState.COMPLETED and job.extra.get("reuse_key"):
        remember_result(storage, str(job.extra["reuse_key"]), job)
    logger.info("job %s: ended as %s (%s)", job_id, job.state.value, job.reason)
    return job.state.value
