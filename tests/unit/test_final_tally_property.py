"""Every report of an ended job agrees with every other: property test over random end states.

Hypothesis draws jobs of mini-batches in any mix of states (never run, still running when
the job ended, succeeded, succeeded with results missing, failed, failed with isolated
items), an end state, thresholds and an output action; the reports are written from the
one final tally as finalize writes them, and checked against each other.
The same checks run against Azurite jobs in tests/e2e/test_report_agreement_e2e.py.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from report_checks import check_reports

from batchfx.core.final_tally import final_reason, final_tally
from batchfx.core.job_details import Outcome
from batchfx.core.progress import Thresholds
from batchfx.core.records import JobRecord, JobState, MiniBatchRecord, MiniBatchStatus
from batchfx.core.reports import errors_csv, job_result_text, processed_mini_batches_csv
from batchfx.services.jobs import job_view

KINDS = ["never_run", "running", "succeeded", "partial", "failed", "isolated"]


def _record(index: int, kind: str, items: int, bad: int) -> MiniBatchRecord | None:
    r = MiniBatchRecord("j", index, MiniBatchStatus.SUCCEEDED, items=items,
                        items_planned=items, tries=1, worker="w", started="s", ended="e")
    if kind == "never_run":
        return None
    if kind == "running":
        r.status, r.ended = MiniBatchStatus.RUNNING, ""
    elif kind == "succeeded":
        r.succeeded = r.rows = items
    elif kind == "partial":  # run() returned fewer results than items
        r.succeeded = r.rows = items - bad
        r.failed = bad
    elif kind == "failed":
        r.status, r.failed, r.tries = MiniBatchStatus.FAILED, items, 3
        r.error_type, r.error_message = "ValueError", "bad"
    else:  # isolated: bad items failed alone, the others scored
        r.status, r.failed, r.tries = MiniBatchStatus.FAILED, bad, 3
        r.succeeded = r.rows = items - bad
        r.error_type, r.isolations, r.isolation_runs = "ValueError", 1, 4
    return r


@st.composite
def ended_jobs(draw: st.DrawFn) -> dict[str, Any]:
    batches = draw(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(1, 6),
                                      st.integers(1, 6)), min_size=1, max_size=25))
    records, planned, isolated = [], {}, {}
    for index, (kind, items, bad) in enumerate(batches):
        bad = min(bad, items)
        planned[index] = items
        record = _record(index, kind, items, bad)
        if record is not None:
            records.append(record)
        if kind == "isolated":
            isolated[index] = [{"item": f"f{index}-{k}.txt", "items": 1, "tries": 3,
                                "error_type": "ValueError", "error": "bad", "reason": "alone"}
                               for k in range(bad)]
    all_final = all(k not in ("never_run", "running") for k, _, _ in batches)
    state = draw(st.sampled_from(
        [JobState.COMPLETED, JobState.CANCELED, JobState.ABORTED, JobState.FAILED]
        if all_final else [JobState.CANCELED, JobState.ABORTED, JobState.FAILED]))
    threshold = draw(st.integers(-1, 10))
    action = draw(st.sampled_from(["append_row", "summary_only"]))
    return {"records": records, "planned": planned, "isolated": isolated, "state": state,
            "threshold": threshold, "action": action}


@settings(max_examples=300, deadline=None)
@given(ended_jobs())
def test_every_report_agrees_with_every_other(case: dict[str, Any]) -> None:
    planned, state = case["planned"], case["state"]
    job = JobRecord("j", "job", state, {"error_threshold": case["threshold"],
                                        "output_action": case["action"],
                                        "append_row_file_name": "out.txt"},
                    "2026-01-01T00:00:00", "results", "job/j", started="2026-01-01T00:00:01",
                    ended="2026-01-01T00:00:09", items_total=sum(planned.values()),
                    mini_batches_total=len(planned), partitioned=True, reason="ended")
    # What finalize writes: rows only for a completed job that writes files.
    rows = sum(r.rows for r in case["records"])
    written = rows if state is JobState.COMPLETED and case["action"] == "append_row" else 0
    final = final_tally(job, case["records"], planned, rows_written=written, elapsed_s=8.0)
    job.reason = final_reason(job, final)
    job.outcome = Outcome(outputs_ready=True, final=final.counts())
    failures = [(r, [f"f{r.index}-{k}.txt" for k in range(r.items)])
                for r in final.records if r.status.is_final and r.failed]
    files = {
        "job_result.txt": job_result_text(job, final, Thresholds.from_spec(job.spec)),
        "processed_mini-batches.csv": processed_mini_batches_csv(final.records,
                                                                 final.never_run),
        "errors.csv": errors_csv(failures, case["isolated"]),
    }
    if written:
        files["out.txt"] = "row\n" * written
    view = job_view(job, None)
    counts = check_reports(view, files, case["threshold"])
    assert counts["rows_written"] == written
    assert counts["succeeded"] == sum(r.succeeded for r in final.records
                                      if r.status.is_final)
