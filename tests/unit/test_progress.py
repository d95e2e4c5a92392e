"""Progress arithmetic and the orchestrator's wait / finalize / abort / fail decision."""

from __future__ import annotations

from typing import Any

import pytest

from batchfx.core.progress import Action, Progress, Thresholds, decide
from batchfx.core.progress_tally import summarize


def row(status: str, succeeded: int = 0, failed: int = 0, rows: int = 0, **extra: Any) -> dict[
    str, Any
]:
    return {"status": status, "succeeded": succeeded, "failed": failed, "rows": rows, **extra}


def progress(
    *,
    total: int = 10,
    partitioned: bool = True,
    succeeded: int = 0,
    failed: int = 0,
    running: int = 0,
    items_failed: int = 0,
    items_succeeded: int = 0,
    items_total: int = 100,
    elapsed_s: float = 0.0,
    init_error: str = "",
) -> Progress:
    return Progress(
        items_total=items_total,
        mini_batches_total=total,
        partitioned=partitioned,
        mini_batches_succeeded=succeeded,
        mini_batches_failed=failed,
        mini_batches_running=running,
        items_succeeded=items_succeeded,
        items_failed=items_failed,
        init_error=init_error,
        elapsed_s=elapsed_s,
    )


# --- summarize -----------------------------------------------------------------------------

def test_summarize_sums_finished_rows() -> None:
    rows = [row("succeeded", 10, 0, 10), row("succeeded", 8, 2, 8), row("failed", 0, 10)]
    p = summarize(rows, items_total=30, mini_batches_total=3, partitioned=True, elapsed_s=3.0)
    assert (p.mini_batches_succeeded, p.mini_batches_failed, p.mini_batches_running) == (2, 1, 0)
    assert (p.items_succeeded, p.items_failed, p.rows) == (18, 12, 18)
    assert p.items_pending == 0 and p.all_done


def test_summarize_does_not_count_running_rows_as_done() -> None:
    rows = [row("succeeded", 5, 0, 5), row("running", 3, 2, 3)]
    p = summarize(rows, items_total=20, mini_batches_total=2, partitioned=True, elapsed_s=1.0)
    assert p.mini_batches_running == 1
    assert p.mini_batches_done == 1
    assert (p.items_succeeded, p.items_failed, p.rows) == (5, 0, 5)
    assert p.items_pending == 15
    assert not p.all_done


def test_summarize_of_no_rows_is_all_pending() -> None:
    p = summarize([], items_total=7, mini_batches_total=2, partitioned=True, elapsed_s=0.0)
    assert (p.mini_batches_pending, p.items_pending) == (2, 7)


@pytest.mark.parametrize(("phase", "words"), [("init", "init()"), ("load", "loading")])
def test_summarize_detects_an_init_or_load_error(phase: str, words: str) -> None:
    failed = row("failed", 0, 4, error_phase=phase, error_type="RuntimeError",
                 error_message="model missing", error_traceback="Traceback...\nRuntimeError",
                 worker="w1", tries=3)
    p = summarize([row("succeeded", 4, 0, 4), failed], items_total=8, mini_batches_total=2,
                  partitioned=True, elapsed_s=1.0)
    assert words in p.init_error
    assert "RuntimeError: model missing" in p.init_error
    assert "Traceback" in p.init_error
    assert "w1" in p.init_error and "3 tries" in p.init_error


def test_summarize_run_error_is_not_an_init_error() -> None:
    failed = row("failed", 0, 4, error_phase="run", error_type="ValueError")
    p = summarize([failed], items_total=4, mini_batches_total=1, partitioned=True, elapsed_s=1.0)
    assert p.init_error == ""


def test_summarize_keeps_the_first_init_error() -> None:
    rows = [row("failed", error_phase="init", error_message="first"),
            row("failed", error_phase="init", error_message="second")]
    p = summarize(rows, items_total=2, mini_batches_total=2, partitioned=True, elapsed_s=1.0)
    assert "first" in p.init_error and "second" not in p.init_error


# --- decide: thresholds --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("items_failed", "all_done", "action"),
    [
        (4, False, Action.WAIT),
        (5, False, Action.WAIT),
        (5, True, Action.FINALIZE),
        (6, False, Action.ABORT),
        (6, True, Action.ABORT),
    ],
)
def test_error_threshold_aborts_only_when_failed_items_exceed_it(
    items_failed: int, all_done: bool, action: Action
) -> None:
    done = 10 if all_done else 5
    p = progress(total=10, succeeded=done, items_failed=items_failed)
    verdict = decide(p, Thresholds(error_threshold=5))
    assert verdict.action is action
    if action is Action.ABORT:
        assert "error_threshold=5" in verdict.reason
        assert str(items_failed) in verdict.reason


@pytest.mark.parametrize(
    ("batches_failed", "all_done", "action"),
    [
        (5, False, Action.WAIT),
        (5, True, Action.FINALIZE),
        (6, False, Action.ABORT),
        (6, True, Action.ABORT),
    ],
)
def test_allowed_failed_count_aborts_only_when_failed_mini_batches_exceed_it(
    batches_failed: int, all_done: bool, action: Action
) -> None:
    succeeded = 20 - batches_failed if all_done else 1
    p = progress(total=20, succeeded=succeeded, failed=batches_failed)
    verdict = decide(p, Thresholds(allowed_failed_count=5))
    assert verdict.action is action
    if action is Action.ABORT:
        assert "allowed_failed_count=5" in verdict.reason


@pytest.mark.parametrize(
    ("partitioned", "failed", "percent", "action"),
    [
        (False, 9, 10.0, Action.WAIT),  # not all scheduled yet: the percent is not checked
        (True, 9, 100.0, Action.FINALIZE),  # 100 = ignore
        (True, 10, 100.0, Action.FINALIZE),  # 100% failed, still ignored
        (True, 1, 10.0, Action.FINALIZE),  # exactly at the limit
        (True, 2, 10.0, Action.ABORT),  # above it
        (True, 0, 0.0, Action.FINALIZE),
        (True, 1, 0.0, Action.ABORT),
    ],
)
def test_allowed_failed_percent_is_checked_once_partitioned_and_only_above_it(
    partitioned: bool, failed: int, percent: float, action: Action
) -> None:
    p = progress(total=10, partitioned=partitioned, succeeded=10 - failed, failed=failed)
    verdict = decide(p, Thresholds(allowed_failed_percent=percent))
    assert verdict.action is action
    if action is Action.ABORT:
        assert f"allowed_failed_percent={percent:g}" in verdict.reason


def test_allowed_failed_percent_compares_with_the_total_not_the_finished() -> None:
    # 1 failed of 2 finished is 50%, but of 10 scheduled it is 10%: not above 10.
    p = progress(total=10, succeeded=1, failed=1)
    assert decide(p, Thresholds(allowed_failed_percent=10)).action is Action.WAIT


@pytest.mark.parametrize(
    "limits",
    [Thresholds(error_threshold=-1), Thresholds(allowed_failed_count=-1), Thresholds()],
)
def test_minus_one_ignores_failures(limits: Thresholds) -> None:
    p = progress(total=10, failed=10, items_failed=100)
    assert decide(p, limits).action is Action.FINALIZE


def test_zero_error_threshold_aborts_on_the_first_failed_item() -> None:
    p = progress(total=10, succeeded=1, items_failed=1)
    assert decide(p, Thresholds(error_threshold=0)).action is Action.ABORT


# --- decide: fail, finalize, wait ----------------------------------------------------------

def test_init_error_fails_the_job_with_the_error_as_reason() -> None:
    p = progress(total=10, succeeded=1, init_error="init() failed: boom")
    verdict = decide(p, Thresholds())
    assert verdict.action is Action.FAIL
    assert verdict.reason == "init() failed: boom"


def test_init_error_wins_over_a_broken_threshold() -> None:
    p = progress(total=10, failed=10, items_failed=100, init_error="init() failed")
    assert decide(p, Thresholds(error_threshold=0)).action is Action.FAIL


def test_partitioned_with_zero_mini_batches_fails() -> None:
    p = progress(total=0, partitioned=True, items_total=0)
    verdict = decide(p, Thresholds())
    assert verdict.action is Action.FAIL
    assert "no files" in verdict.reason


def test_zero_mini_batches_while_still_partitioning_waits() -> None:
    p = progress(total=0, partitioned=False, items_total=0)
    assert decide(p, Thresholds()).action is Action.WAIT


def test_all_done_finalizes() -> None:
    p = progress(total=3, succeeded=2, failed=1, items_succeeded=20, items_failed=10)
    assert decide(p, Thresholds()).action is Action.FINALIZE


def test_every_mini_batch_done_but_not_partitioned_waits() -> None:
    p = progress(total=3, partitioned=False, succeeded=3)
    assert decide(p, Thresholds()).action is Action.WAIT


def test_running_mini_batches_wait() -> None:
    p = progress(total=3, succeeded=2, running=1)
    assert decide(p, Thresholds()).action is Action.WAIT


def test_thresholds_from_spec_reads_the_three_limits_with_defaults() -> None:
    assert Thresholds.from_spec({}) == Thresholds(-1, -1, 100.0)
    spec = {"error_threshold": 5, "allowed_failed_count": 2, "allowed_failed_percent": 12.5}
    assert Thresholds.from_spec(spec) == Thresholds(5, 2, 12.5)


# --- throughput and ETA --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("partitioned", "items_succeeded", "elapsed_s", "eta"),
    [
        (True, 0, 10.0, None),  # no progress yet
        (True, 25, 0.0, None),  # no time elapsed: no rate
        (False, 25, 10.0, None),  # total still unknown
        (True, 25, 10.0, 30.0),  # 2.5 items/s, 75 left
    ],
)
def test_eta(partitioned: bool, items_succeeded: int, elapsed_s: float, eta: float | None) -> None:
    p = progress(total=4, partitioned=partitioned, succeeded=1, items_total=100,
                 items_succeeded=items_succeeded, elapsed_s=elapsed_s)
    assert p.eta_s == eta


def test_eta_is_zero_when_all_done() -> None:
    p = progress(total=2, succeeded=2, items_total=10, items_succeeded=10, elapsed_s=0.0)
    assert p.eta_s == 0.0


def test_throughput_counts_failed_items_as_done() -> None:
    p = progress(items_succeeded=30, items_failed=10, elapsed_s=8.0)
    assert p.items_per_second == 5.0


def test_throughput_is_zero_before_any_time_elapsed() -> None:
    assert progress(items_succeeded=30, elapsed_s=0.0).items_per_second == 0.0


def test_to_dict_shows_counts_throughput_and_eta() -> None:
    p = progress(total=4, succeeded=1, running=1, items_total=100, items_succeeded=25,
                 elapsed_s=10.0)
    view = p.to_dict()
    assert view["items"] == {"total": 100, "succeeded": 25, "failed": 0, "pending": 75}
    assert view["mini_batches"] == {"total": 4, "succeeded": 1, "failed": 0, "running": 1,
                                    "pending": 3}
    assert view["items_per_second"] == 2.5
    assert view["eta_seconds"] == 30.0


def test_to_dict_eta_is_null_before_any_progress() -> None:
    assert progress(elapsed_s=5.0).to_dict()["eta_seconds"] is None


def _row(status: str, items: int, planned: int, succeeded: int) -> dict[str, object]:
    return {"status": status, "items": items, "items_planned": planned,
            "succeeded": succeeded, "failed": items - succeeded, "rows": succeeded}


def test_an_estimated_total_is_corrected_by_the_rows_read_and_exact_when_all_are_done() -> None:
    from batchfx.core.progress_tally import summarize

    rows = [_row("succeeded", 120, 100, 120), _row("running", 0, 100, 0)]
    running = summarize(rows, items_total=200, mini_batches_total=2, partitioned=True,
                        elapsed_s=1.0, items_estimated=True)
    assert (running.items_total, running.items_estimated) == (220, True)
    assert running.to_dict()["items_estimated"] is True
    rows[1] = _row("failed", 90, 100, 0)
    done = summarize(rows, items_total=200, mini_batches_total=2, partitioned=True,
                     elapsed_s=2.0, items_estimated=True)
    assert (done.items_total, done.items_estimated, done.items_pending) == (210, False, 0)


def test_a_known_total_is_never_corrected() -> None:
    from batchfx.core.progress_tally import summarize

    rows = [_row("succeeded", 7, 0, 7)]  # rows written before items_planned existed
    progress = summarize(rows, items_total=7, mini_batches_total=1, partitioned=True,
                         elapsed_s=1.0)
    assert (progress.items_total, progress.items_estimated) == (7, False)




def test_a_job_is_checked_sooner_once_every_mini_batch_left_is_under_way() -> None:
    from batchfx.core.progress import MIN_CHECK_S, next_check_s

    busy = progress(total=10, succeeded=4, running=2, items_succeeded=40, elapsed_s=4.0)
    assert next_check_s(busy, 5.0) == 5.0  # mini-batches still queued
    ending = progress(total=10, succeeded=8, running=2, items_succeeded=80, items_total=100,
                      elapsed_s=8.0)
    assert next_check_s(ending, 5.0) == 1.0  # 20 items at 10/s: half the time left
    last = progress(total=10, succeeded=9, running=1, items_succeeded=99, items_total=100,
                    elapsed_s=9.9)
    assert next_check_s(last, 5.0) == MIN_CHECK_S
    assert next_check_s(progress(total=10, partitioned=False, running=2), 5.0) == 5.0
