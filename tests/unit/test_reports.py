"""The job's report texts: processed_mini-batches.csv, errors.csv, job_result.txt."""

from __future__ import annotations

import csv
import io

from batchfx.core.final_tally import FinalTally
from batchfx.core.progress import Progress, Thresholds
from batchfx.core.records import JobRecord, JobState, MiniBatchRecord, MiniBatchStatus
from batchfx.core.reports import (
    ERROR_COLUMNS,
    REPORT_COLUMNS,
    error_details,
    errors_csv,
    job_result_text,
    processed_mini_batches_csv,
)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def succeeded(index: int, items: int = 10) -> MiniBatchRecord:
    return MiniBatchRecord("j1", index, MiniBatchStatus.SUCCEEDED, items=items, tries=1,
                           succeeded=items, rows=items, worker="w1", started="t0", ended="t9",
                           seconds=1.5)


def failed(index: int, items: int = 3) -> MiniBatchRecord:
    return MiniBatchRecord("j1", index, MiniBatchStatus.FAILED, items=items, tries=3,
                           failed=items, worker="w2", started="t1", seconds=0.5,
                           error_type="ValueError", error_message="bad pixel\nsecond line",
                           error_traceback="Traceback (most recent call last):\n  x\nValueError",
                           error_try=3, error_phase="run")


def partial(index: int) -> MiniBatchRecord:
    return MiniBatchRecord("j1", index, MiniBatchStatus.SUCCEEDED, items=10, tries=1,
                           succeeded=8, failed=2, rows=8, worker="w1")


# --- processed_mini-batches.csv ------------------------------------------------------------

def test_processed_mini_batches_has_azure_ml_columns_in_order() -> None:
    text = processed_mini_batches_csv([succeeded(0)], {})
    assert text.splitlines()[0] == ("mini_batch_id,tries,worker,start,end,total,succeeded,"
                                    "failed,seconds,status,error,isolation_runs")
    assert text.splitlines()[0].split(",") == REPORT_COLUMNS


def test_processed_mini_batches_lists_one_line_per_mini_batch_in_input_order() -> None:
    text = processed_mini_batches_csv([failed(2), succeeded(0), succeeded(10)], {1: 7})
    assert [r["mini_batch_id"] for r in read_csv(text)] == ["0000000", "0000001", "0000002",
                                                            "0000010"]


def test_processed_mini_batches_writes_the_values_of_a_succeeded_mini_batch() -> None:
    (line,) = read_csv(processed_mini_batches_csv([succeeded(4)], {}))
    assert line == {"mini_batch_id": "0000004", "tries": "1", "worker": "w1", "start": "t0",
                    "end": "t9", "total": "10", "succeeded": "10", "failed": "0", "seconds": "1.5",
                    "status": "succeeded", "error": "", "isolation_runs": "0"}


def test_processed_mini_batches_shows_a_not_run_row_with_its_item_count() -> None:
    (line,) = read_csv(processed_mini_batches_csv([], {3: 7}))
    assert line["mini_batch_id"] == "0000003"
    assert line["status"] == "not run"
    assert (line["total"], line["succeeded"], line["failed"], line["tries"]) == ("7", "0", "0",
                                                                                 "0")


def test_processed_mini_batches_shows_the_first_line_of_a_failure() -> None:
    (line,) = read_csv(processed_mini_batches_csv([failed(0)], {}))
    assert line["status"] == "failed"
    assert line["error"] == "ValueError: bad pixel"


def test_processed_mini_batches_quotes_fields_with_commas() -> None:
    record = failed(0)
    record.error_message = 'a, "quoted" message'
    (line,) = read_csv(processed_mini_batches_csv([record], {}))
    assert line["error"] == 'ValueError: a, "quoted" message'


# --- errors.csv ----------------------------------------------------------------------------

def test_errors_csv_has_its_columns() -> None:
    assert errors_csv([]).splitlines() == [",".join(ERROR_COLUMNS)]


def test_errors_csv_lists_every_item_of_a_failed_mini_batch() -> None:
    items = ["in/a.png", "in/b.png", "in/c.png"]
    lines = read_csv(errors_csv([(failed(5), items)]))
    assert [line["item"] for line in lines] == items
    for line in lines:
        assert line["mini_batch_id"] == "0000005"
        assert line["tries"] == "3"
        assert line["error_type"] == "ValueError"
        assert line["error"] == "bad pixel"
        assert "3 tries" in line["reason"]


def test_errors_csv_writes_one_line_for_a_partial_failure() -> None:
    lines = read_csv(errors_csv([(partial(2), ["in/a.png"] * 10)]))
    assert len(lines) == 1
    assert lines[0]["mini_batch_id"] == "0000002"
    assert lines[0]["item"] == ""
    assert "8 results for 10 items" in lines[0]["reason"]
    assert "2 items" in lines[0]["reason"]


def test_errors_csv_leaves_out_a_fully_succeeded_mini_batch() -> None:
    assert read_csv(errors_csv([(succeeded(0), ["in/a.png"])])) == []


# --- errors.txt ----------------------------------------------------------------------------

def test_error_details_holds_the_full_traceback_of_failed_mini_batches_only() -> None:
    text = error_details([succeeded(0), failed(1)])
    assert "mini-batch 0000001" in text
    assert "mini-batch 0000000" not in text
    assert "Traceback (most recent call last):" in text
    assert "bad pixel\nsecond line" in text


# --- job_result.txt ------------------------------------------------------------------------

def _job(state: JobState, reason: str = "", error: str = "") -> JobRecord:
    return JobRecord(job_id="digits-1", name="digits", state=state, spec={},
                     created="2025-01-01T00:00:00", output_container="results",
                     output_prefix="digits/digits-1", started="2025-01-01T00:00:01",
                     ended="2025-01-01T00:01:01", reason=reason, error=error)


_PROGRESS = Progress(items_total=100, mini_batches_total=10, partitioned=True,
                     mini_batches_succeeded=7, mini_batches_failed=2, items_succeeded=70,
                     items_failed=20, rows=70, elapsed_s=60.0)


def _final(state: JobState = JobState.COMPLETED, rows_written: int = 70) -> FinalTally:
    return FinalTally(state, (), {}, _PROGRESS, rows_written)


def _fields(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line
                and not line.startswith("  "))


def test_job_result_text_includes_status_and_reason() -> None:
    job = _job(JobState.ABORTED, reason="21 failed items exceed error_threshold=20")
    fields = _fields(job_result_text(job, _final(job.state), Thresholds(error_threshold=20)))
    assert fields["status"] == "aborted"
    assert fields["reason"] == "21 failed items exceed error_threshold=20"


def test_job_result_text_includes_counts() -> None:
    fields = _fields(job_result_text(_job(JobState.COMPLETED), _final(), Thresholds()))
    assert fields["items_total"] == "100"
    assert fields["items_succeeded"] == "70"
    assert fields["items_failed"] == "20"
    assert fields["items_not_run"] == "10"
    assert fields["mini_batches_total"] == "10"
    assert fields["mini_batches_succeeded"] == "7"
    assert fields["mini_batches_failed"] == "2"
    assert fields["mini_batches_not_run"] == "1"
    assert fields["rows_written"] == "70"


def test_job_result_text_includes_thresholds() -> None:
    limits = Thresholds(error_threshold=20, allowed_failed_count=3, allowed_failed_percent=12.5)
    fields = _fields(job_result_text(_job(JobState.COMPLETED), _final(), limits))
    assert fields["error_threshold"] == "20"
    assert fields["allowed_failed_count"] == "3"
    assert fields["allowed_failed_percent"] == "12.5"


def test_job_result_text_without_a_reason_repeats_the_state() -> None:
    fields = _fields(job_result_text(_job(JobState.COMPLETED), _final(), Thresholds()))
    assert fields["reason"] == "completed"


def test_job_result_text_names_the_output_location() -> None:
    fields = _fields(job_result_text(_job(JobState.COMPLETED), _final(), Thresholds()))
    assert fields["output"] == "results/digits/digits-1"


def test_job_result_text_indents_a_multi_line_error() -> None:
    job = _job(JobState.FAILED, error="init() failed\nTraceback\nRuntimeError: no model")
    text = job_result_text(job, _final(job.state), Thresholds())
    assert "error: |\n  init() failed\n  Traceback\n  RuntimeError: no model\n" in text


def test_job_result_text_of_a_canceled_job_says_its_rows_were_not_written() -> None:
    fields = _fields(job_result_text(_job(JobState.CANCELED),
                                     _final(JobState.CANCELED, rows_written=0), Thresholds()))
    assert fields["rows_returned"] == "70"
    assert fields["rows_written"] == "0"
    assert fields["rows_not_written"].startswith("70 rows of succeeded mini-batches")
    assert "canceled" in fields["rows_not_written"]


def test_a_mini_batch_running_when_the_job_ended_is_shown_stopped_and_not_counted() -> None:
    running = MiniBatchRecord("j1", 1, MiniBatchStatus.RUNNING, items=10, items_planned=10,
                              tries=1, succeeded=4, worker="w1", started="t0")
    (line,) = read_csv(processed_mini_batches_csv([running], {}))
    assert line["status"] == "stopped"
    assert (line["total"], line["succeeded"], line["failed"]) == ("10", "0", "0")
    assert "ended while" in line["error"]


def test_errors_csv_counts_the_items_each_line_stands_for() -> None:
    files = read_csv(errors_csv([(failed(5), ["a", "b", "c"]), (partial(2), ["x"] * 10)]))
    assert [line["items"] for line in files] == ["1", "1", "1", "2"]
    rows = failed(7, items=250)  # a tabular mini-batch: two slices hold its 250 rows
    (line,) = read_csv(errors_csv([(rows, ["t.csv#0-99", "t.csv#100-249"])]))
    assert line["items"] == "250"
    assert line["item"] == "t.csv#0-99, t.csv#100-249"


def test_errors_csv_lists_isolated_items_with_their_counts() -> None:
    entry = {"item": "rows 3-5 of mini-batch 0000001 (t.csv#0-9)", "items": 3, "tries": 2,
             "error_type": "ValueError", "error": "bad", "reason": "failed on its own"}
    (line,) = read_csv(errors_csv([(failed(1, items=10), [])], {1: [entry]}))
    assert (line["item"], line["items"], line["tries"]) == (entry["item"], "3", "2")
