"""Pure text of the job's reports: summary, per-mini-batch report, errors file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from batchfx.core.final_tally import FinalTally, rows_not_written_note
from batchfx.core.progress import Thresholds
from batchfx.core.records import JobRecord, MiniBatchRecord, mini_batch_key

__all__ = ["error_details", "errors_csv", "job_result_text", "processed_mini_batches_csv"]

REPORT_COLUMNS = ["mini_batch_id", "tries", "worker", "start", "end", "total", "succeeded",
                  "failed", "seconds", "status", "error", "isolation_runs"]
# items: how many items the line stands for (a file is one; a tabular range its rows), so
# the column sums to the job's failed items.
ERROR_COLUMNS = ["item", "mini_batch_id", "tries", "error_type", "error", "reason", "items"]


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:500]


def _error(record: MiniBatchRecord) -> str:
    if not record.error_type:
        return ""
    return f"{record.error_type}: {_first_line(record.error_message)}"


def processed_mini_batches_csv(records: Iterable[MiniBatchRecord],
                               never_run: Mapping[int, int]) -> str:
    """``processed_mini-batches.csv``: one line per mini-batch, in input order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    rows: list[tuple[int, list[Any]]] = []
    for r in records:
        if not r.status.is_final:  # the job ended while it ran: not counted, not written
            rows.append((r.index, [mini_batch_key(r.index), r.tries, r.worker, r.started, "",
                                   r.items_planned or r.items, 0, 0, 0, "stopped",
                                   "the job ended while this mini-batch ran", 0]))
            continue
        error = _error(r) if r.status.value == "failed" or r.failed else ""
        rows.append((r.index, [mini_batch_key(r.index), r.tries, r.worker, r.started, r.ended,
                               r.items, r.succeeded, r.failed, r.seconds, r.status.value,
                               error, r.isolation_runs]))
    for index, items in never_run.items():
        rows.append((index, [mini_batch_key(index), 0, "", "", "", items, 0, 0, 0, "not run",
                             "", 0]))
    for _, row in sorted(rows, key=lambda pair: pair[0]):
        writer.writerow(row)
    return out.getvalue()


def errors_csv(failures: Iterable[tuple[MiniBatchRecord, list[str]]],
               isolated: Mapping[int, list[dict[str, Any]]] | None = None) -> str:
    """``errors.csv``: each failed item and why (partial failures named per mini-batch);
    the ``items`` column sums to the job's failed items.

    ``failures``: each mini-batch with failed items, and the names of its items (files;
    for a tabular input its slices, which stand for ``record.failed`` rows together).
    ``isolated``: for mini-batches whose bad items were isolated, the item errors by index.
    """
    isolated = isolated or {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ERROR_COLUMNS)
    for record, items in failures:
        key = mini_batch_key(record.index)
        if record.index in isolated:
            for entry in isolated[record.index]:
                writer.writerow([entry["item"], key, entry["tries"], entry["error_type"],
                                 _first_line(entry["error"]), entry["reason"],
                                 entry.get("items", 1)])
        elif record.status.value == "failed":
            reason = f"the mini-batch failed after {record.tries} tries"
            named = [(item, 1) for item in items]
            if len(items) != record.failed:  # slices of rows, or names not known
                named = [(_together(items), record.failed)]
            for item, count in named:
                writer.writerow([item, key, record.tries, record.error_type,
                                 _first_line(record.error_message), reason, count])
        elif record.failed:
            reason = (f"run() returned {record.rows} results for {record.items} items; "
                      f"{record.failed} items count as failed")
            writer.writerow(["", key, record.tries, "MissingResults", "", reason,
                             record.failed])
    return out.getvalue()


def _together(names: list[str]) -> str:
    """Several items named on one line (a tabular mini-batch's slices)."""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def error_details(records: Iterable[MiniBatchRecord],
                  isolated: Mapping[int, list[dict[str, Any]]] | None = None) -> str:
    """Full tracebacks of every failed mini-batch, and of each isolated item (``errors.txt``)."""
    isolated = isolated or {}
    blocks = []
    for r in records:
        if r.status.value != "failed":
            continue
        if r.index in isolated:
            blocks.append(
                f"=== mini-batch {mini_batch_key(r.index)}: failed after {r.tries} tries; "
                f"split to isolate its bad items in {r.isolation_runs} runs: "
                f"{r.succeeded} items scored, {r.failed} failed\n")
            for entry in isolated[r.index]:
                blocks.append(
                    f"--- {entry['item']}: failed after {entry['tries']} tries "
                    f"(phase {entry['phase']}): {entry['reason']}\n"
                    f"{entry['error_type']}: {entry['error']}\n{entry['traceback']}".rstrip()
                    + "\n")
            continue
        blocks.append(
            f"=== mini-batch {mini_batch_key(r.index)}: failed after {r.tries} tries "
            f"(last error in try {r.error_try}, phase {r.error_phase or '?'}, "
            f"worker {r.worker or '?'})\n{r.error_type}: {r.error_message}\n"
            f"{r.error_traceback}".rstrip() + "\n")
    return "\n".join(blocks)


def job_result_text(job: JobRecord, final: FinalTally, limits: Thresholds) -> str:
    """``job_result.txt``: status, counts, thresholds and why the job ended as it did (from
    the job's one final tally, as every other report)."""
    p = final.progress
    not_written = rows_not_written_note(final, str(job.spec.get("output_action",
                                                                "append_row")))
    lines = [
        f"status: {job.state.value}",
        f"reason: {job.reason or job.state.value}",
        f"job_id: {job.job_id}",
        f"name: {job.name}",
        *([f"description: {' '.join(job.spec['description'].split())}"]
          if job.spec.get("description") else []),
        f"created: {job.created}",
        f"started: {job.started}",
        f"ended: {job.ended}",
        f"items_total: {p.items_total}",
        f"items_succeeded: {p.items_succeeded}",
        f"items_failed: {p.items_failed}",
        f"items_not_run: {p.items_pending}",
        f"mini_batches_total: {p.mini_batches_total}",
        f"mini_batches_succeeded: {p.mini_batches_succeeded}",
        f"mini_batches_failed: {p.mini_batches_failed}",
        f"mini_batches_not_run: {p.mini_batches_pending}",
        *([f"mini_batches_stopped: {len(final.stopped)} (running when the job ended; their "
           "results are not counted)"] if final.stopped else []),
        f"rows_returned: {p.rows}",
        f"rows_written: {final.rows_written}",
        *([f"rows_not_written: {not_written}"] if not_written else []),
        f"error_threshold: {limits.error_threshold}",
        f"allowed_failed_count: {limits.allowed_failed_count}",
        f"allowed_failed_percent: {limits.allowed_failed_percent:g}",
        f"elapsed_seconds: {p.elapsed_s:.1f}",
        f"items_per_second: {p.items_per_second:.2f}",
        f"output: {job.output_location}",
    ]
    if job.error:
        lines.append("error: |")
        lines += ["  " + line for line in job.error.splitlines()]
    return "\n".join(lines) + "\n"
