"""One check that an ended job's reports agree with each other, its view and its output.

Used by the property test over random end states (tests/unit) and by the jobs run against
Azurite (tests/e2e/test_report_agreement_e2e.py).
"""

from __future__ import annotations

import csv
import io
from typing import Any

NOT_COUNTED = ("not run", "stopped")


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def result_fields(text: str) -> dict[str, str]:
    """``job_result.txt`` as ``name -> value`` (an indented error block left out)."""
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line
                and not line.startswith("  "))


def check_reports(view: dict[str, Any], files: dict[str, str],
                  threshold: int = -1) -> dict[str, int]:
    """Assert that ``job_result.txt``, ``processed_mini-batches.csv``, ``errors.csv``, the
    append_row file (text, one row per line) and ``view`` (the job's view once ended) all
    say the same; returns the counts they agree on."""
    result = result_fields(files["job_result.txt"])
    processed = _csv(files["processed_mini-batches.csv"])
    errors = _csv(files["errors.csv"])
    assert view["outputs_ready"] is True
    assert result["status"] == view["state"]
    assert result["reason"] == (view["reason"] or view["state"])

    # Items: job_result.txt == the view == the sums of processed_mini-batches.csv.
    done = [p for p in processed if p["status"] in ("succeeded", "failed")]
    assert all(p["status"] in ("succeeded", "failed", *NOT_COUNTED) for p in processed)
    succeeded = sum(int(p["succeeded"]) for p in done)
    failed = sum(int(p["failed"]) for p in done)
    assert int(result["items_succeeded"]) == view["items"]["succeeded"] == succeeded
    assert int(result["items_failed"]) == view["items"]["failed"] == failed
    assert int(result["items_total"]) == view["items"]["total"] == sum(
        int(p["total"]) for p in processed)
    assert int(result["items_not_run"]) == view["items"]["pending"] == sum(
        int(p["total"]) for p in processed if p["status"] in NOT_COUNTED)
    # Mini-batches: one line each, in order, and counted alike everywhere.
    ids = [p["mini_batch_id"] for p in processed]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert int(result["mini_batches_total"]) == view["mini_batches"]["total"] == len(ids)
    for status in ("succeeded", "failed"):
        count = sum(p["status"] == status for p in processed)
        assert int(result[f"mini_batches_{status}"]) == view["mini_batches"][status] == count
    not_counted = sum(p["status"] in NOT_COUNTED for p in processed)
    assert int(result["mini_batches_not_run"]) == view["mini_batches"]["pending"] == not_counted
    assert view["mini_batches_stopped"] == sum(p["status"] == "stopped" for p in processed)
    # errors.csv: its items add up to the failed items, from the mini-batches with failures.
    assert sum(int(e["items"]) for e in errors) == failed
    assert {e["mini_batch_id"] for e in errors} == {
        p["mini_batch_id"] for p in done if int(p["failed"])}
    # Rows: what the output holds, said alike; only a completed job writes its rows.
    written = int(result["rows_written"])
    assert view["rows_written"] == written
    assert int(result["rows_returned"]) == view["rows"]
    assert ("rows_not_written" in result) == (view["rows"] > written)
    name = view["output"].get("append_row_file")
    if view["state"] != "completed":
        assert written == 0 and name is None
    if name is not None:
        relative = name.rsplit("/", 1)[-1]
        assert len(files.get(relative, "").splitlines()) == written
    elif view["state"] != "completed":
        assert not any(f.endswith((".txt", ".csv")) and f not in REPORTS
                       and not f.startswith("logs/") for f in files), sorted(files)
    # An abort's reason counts what the reports count.
    if view["state"] == "aborted" and threshold != -1 and failed > threshold:
        assert result["reason"].startswith(f"{failed} failed items exceed")
    return {"succeeded": succeeded, "failed": failed, "rows_written": written,
            "not_counted": not_counted}


REPORTS = {"job_result.txt", "processed_mini-batches.csv", "errors.csv", "errors.txt",
           "progress_overview.json", "metrics.json"}
