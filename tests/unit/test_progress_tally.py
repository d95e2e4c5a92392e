"""The progress tally kept between checks: each finished mini-batch counted once, however
often its row is read again, and the rows to read next chosen by the service's Timestamp."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from batchfx.core.progress_tally import MARGIN, Tally, summarize

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def row(index: int, status: str, *, seconds: float = 0.0, succeeded: int = 0, failed: int = 0,
        rows: int = 0, **extra: Any) -> dict[str, Any]:
    return {"RowKey": f"{index:07d}", "status": status, "succeeded": succeeded,
            "failed": failed, "rows": rows, "Timestamp": T0 + timedelta(seconds=seconds),
            **extra}


def totals(tally: Tally, mini_batches: int = 4) -> tuple[int, int, int, int, int, int]:
    p = tally.progress(items_total=40, mini_batches_total=mini_batches, partitioned=True,
                       elapsed_s=1.0)
    return (p.mini_batches_succeeded, p.mini_batches_failed, p.mini_batches_running,
            p.items_succeeded, p.items_failed, p.rows)


def test_a_finished_row_read_again_is_counted_once() -> None:
    tally = Tally()
    tally.add([row(0, "succeeded", succeeded=10, rows=10), row(1, "failed", failed=10)])
    tally.add([row(0, "succeeded", succeeded=10, rows=10), row(1, "failed", failed=10)])
    assert totals(tally) == (1, 1, 0, 10, 10, 10)


def test_a_running_row_that_finishes_leaves_the_running_count() -> None:
    tally = Tally()
    tally.add([row(2, "running"), row(3, "running")])
    assert totals(tally)[2] == 2
    tally.add([row(2, "succeeded", seconds=5, succeeded=10, rows=10)])
    assert totals(tally) == (1, 0, 1, 10, 0, 10)


def test_the_next_read_starts_a_margin_before_the_newest_row_seen() -> None:
    tally = Tally()
    assert tally.since() is None  # nothing seen: read every row
    tally.add([row(0, "running", seconds=3), row(1, "succeeded", seconds=9)])
    assert tally.since() == T0 + timedelta(seconds=9) - MARGIN
    tally.add([row(0, "succeeded", seconds=4)])  # an older stamp never moves it back
    assert tally.since() == T0 + timedelta(seconds=9) - MARGIN


def test_the_tally_survives_being_kept_as_json() -> None:
    tally = Tally()
    tally.add([row(i, "succeeded", seconds=i, succeeded=1, rows=1) for i in range(0, 40, 3)])
    tally.add([row(1000, "failed", seconds=50, failed=2), row(7, "running")])
    tally.checks, tally.exact = 3, False
    again = Tally.from_json(tally.to_json())
    assert again == tally
    assert again.is_done(999) is False and again.is_done(1000) and again.is_done(39)
    again.add([row(39, "succeeded", succeeded=1, rows=1)])  # counted already
    assert totals(again, 1001) == totals(tally, 1001)


def test_an_init_error_fails_the_job_with_the_first_one_seen() -> None:
    tally = Tally()
    tally.add([row(0, "failed", failed=10, error_phase="init", error_type="RuntimeError",
                   error_message="no model", worker="w1", tries=3)])
    tally.add([row(1, "failed", failed=10, error_phase="init", error_message="second")])
    p = tally.progress(items_total=20, mini_batches_total=2, partitioned=True, elapsed_s=1.0)
    assert "RuntimeError: no model" in p.init_error and "second" not in p.init_error


def test_estimated_items_are_corrected_once_per_finished_mini_batch() -> None:
    tally = Tally()
    done = row(0, "succeeded", succeeded=12, rows=12, items=12, items_planned=10)
    tally.add([done, done])
    p = tally.progress(items_total=20, mini_batches_total=2, partitioned=True, elapsed_s=1.0,
                       items_estimated=True)
    assert p.items_total == 22 and p.items_estimated


def test_summarize_numbers_rows_without_keys_by_position() -> None:
    rows = [{"status": "succeeded", "succeeded": 2, "rows": 2},
            {"status": "succeeded", "succeeded": 3, "rows": 3}]
    p = summarize(rows, items_total=5, mini_batches_total=2, partitioned=True, elapsed_s=1.0)
    assert (p.mini_batches_succeeded, p.items_succeeded, p.all_done) == (2, 5, True)


def test_an_init_error_read_without_its_text_names_the_row_to_read_it_from() -> None:
    tally = Tally()
    tally.add([row(3, "failed", failed=10, error_phase="load")])
    assert tally.init_error_at == 3 and tally.init_error == ""
    p = tally.progress(items_total=10, mini_batches_total=4, partitioned=True, elapsed_s=1.0)
    assert p.init_error  # the job fails on it even before its text is read


def test_the_first_open_mini_batch_is_the_lowest_not_counted() -> None:
    tally = Tally()
    assert tally.first_open() == 0
    tally.add([row(i, "succeeded") for i in (0, 1, 2, 4, 5, 6, 7, 8, 9)])
    assert tally.first_open() == 3
    tally.add([row(3, "failed")])
    assert tally.first_open() == 10
