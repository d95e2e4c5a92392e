"""Isolating bad items: the pure splitting, its limits and the combined outcome."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchfx.core.errors import OutputError
from batchfx.core.isolation import Isolation, Span, combine, isolate, may_isolate
from batchfx.core.row_format import format_rows
from batchfx.core.script_contract import TryError, TryOutcome, TryPhase

BAD = TryError(TryPhase.RUN, "ValueError", "corrupt input", "Traceback ...")


def _runner(items: list[str], bad: set[str], fmt: str = "text", actual: int | None = None):
    """A run(span) over ``items`` failing when the span holds a bad item; records calls."""
    calls: list[Span] = []
    size = actual if actual is not None else len(items)

    def run(span: Span) -> TryOutcome:
        calls.append(span)
        chosen = items[span.start:span.stop if span.stop is not None else size]
        broken = [i for i in chosen if i in bad]
        if broken:
            error = TryError(TryPhase.RUN, "ValueError", f"corrupt input {broken[0]}", "tb")
            return TryOutcome.failure(error, len(chosen), 0.1, "w")
        part, header = format_rows([f"{i} ok" for i in chosen], fmt, False)
        return TryOutcome(len(chosen), len(chosen), 0, len(chosen), part, header, None, 0.1, "w")

    return run, calls


def test_one_bad_item_fails_alone_and_its_neighbours_score() -> None:
    items = [f"f{i}" for i in range(10)]
    run, calls = _runner(items, {"f6"})
    found = isolate(10, BAD, run, tries=3)
    assert [(f.position, f.count, f.alone) for f in found.failures] == [(6, 1, True)]
    failure = found.failures[0]
    assert failure.error.message == "corrupt input f6"
    # the item took part in the 3 tries and in each isolation run down to itself
    assert failure.tries == 3 + max(s.depth for s in calls if s.start == 6 and s.stop == 7)
    assert found.runs == len(calls) <= 2 * 4  # about 2·log2(10), far below 2n
    outcome = combine(found, "text", 1.0, "w")
    assert outcome.part.decode().splitlines() == [f"f{i} ok" for i in range(10) if i != 6]
    assert (outcome.items, outcome.succeeded, outcome.failed, outcome.rows) == (10, 9, 1, 9)
    assert outcome.error is not None and "f6" in outcome.error.message
    # every item is in exactly one scored span or failure
    covered = sorted([i for s, o in found.succeeded for i in range(s.start, s.start + o.items)]
                     + [f.position for f in found.failures])
    assert covered == list(range(10))


def test_two_bad_items_in_different_halves_are_both_isolated() -> None:
    items = [f"f{i}" for i in range(8)]
    run, _ = _runner(items, {"f1", "f5"})
    found = isolate(8, BAD, run, tries=2)
    assert [f.position for f in found.failures] == [1, 5]
    assert all(f.alone for f in found.failures)
    assert combine(found, "text", 0.0, "w").succeeded == 6


def test_two_bad_files_whose_errors_differ_only_in_numbers_are_both_isolated() -> None:
    """One per half, each half fails with what reads as the whole's error (the digits of
    the names are ignored): the quarters show the items are the cause."""
    items = [f"item-{i:03d}.txt" for i in range(10)]
    run, calls = _runner(items, {"item-001.txt", "item-007.txt"})
    error = TryError(TryPhase.RUN, "ValueError", "corrupt input item-001.txt", "tb")
    found = isolate(10, error, run, tries=3)
    assert [(f.position, f.alone) for f in found.failures] == [(1, True), (7, True)]
    assert not found.gave_up
    assert combine(found, "text", 0.0, "w").succeeded == 8
    assert found.runs == len(calls) <= 2 + 4 + 2 * 4


def test_every_item_of_a_two_item_mini_batch_failing_alone_is_not_a_script_bug() -> None:
    run, calls = _runner(["f1", "f2"], {"f1", "f2"})
    error = TryError(TryPhase.RUN, "ValueError", "corrupt input f1", "tb")
    found = isolate(2, error, run, tries=1)  # both halves fail "the same", and are single
    assert [(f.position, f.alone) for f in found.failures] == [(0, True), (1, True)]
    assert len(calls) == 2 and not found.gave_up


def test_a_failure_that_does_not_depend_on_items_stops_after_six_runs() -> None:
    calls: list[Span] = []

    def run(span: Span) -> TryOutcome:
        calls.append(span)
        error = TryError(TryPhase.RUN, "NameError", "name 'modle' is not defined (pid 1234)",
                         "tb")
        return TryOutcome.failure(error, span.planned(10), 0.1, "w")

    error = TryError(TryPhase.RUN, "NameError", "name 'modle' is not defined (pid 99)", "tb")
    found = isolate(10, error, run, tries=3)
    assert len(calls) == found.runs == 6  # the halves, then their halves
    assert "does not depend on particular items" in found.gave_up
    assert sum(f.count for f in found.failures) == 10
    assert not any(f.alone for f in found.failures)
    assert combine(found, "text", 0.0, "w").failed == 10


@pytest.mark.parametrize("phase", [TryPhase.LOAD, TryPhase.INIT, TryPhase.INPUT])
def test_errors_not_about_items_are_not_split(phase: TryPhase) -> None:
    error = TryError(phase, "ImportError", "no module named torch", "tb")
    assert not may_isolate(error, 10)

    def run(span: Span) -> TryOutcome:
        raise AssertionError("must not run")

    found = isolate(10, error, run, tries=3)
    assert found.runs == 0 and found.failures[0].count == 10


def test_single_item_mini_batches_are_not_split() -> None:
    assert not may_isolate(BAD, 1)
    assert not may_isolate(None, 10)
    assert may_isolate(TryError(TryPhase.TIMEOUT, "TimeoutError", "slow", ""), 2)


def test_the_run_budget_ends_isolation_with_every_item_accounted_for() -> None:
    items = [f"f{i}" for i in range(64)]
    run, calls = _runner(items, {f"f{i}" for i in range(0, 64, 3)})
    found = isolate(64, BAD, run, tries=1, max_runs=10)
    assert found.runs == 10 == len(calls)
    assert "stopped after 10 isolation runs" in found.gave_up
    outcome = combine(found, "text", 0.0, "w")
    assert outcome.items == 64 and outcome.succeeded + outcome.failed == 64


def test_a_job_that_ends_stops_isolation() -> None:
    items = [f"f{i}" for i in range(16)]
    run, calls = _runner(items, {"f3"})
    found = isolate(16, BAD, run, tries=1, stop=lambda: "the job ended while isolating")
    assert len(calls) == 2  # the two halves, then nothing more
    assert found.gave_up == "the job ended while isolating"
    assert combine(found, "text", 0.0, "w").succeeded + sum(
        f.count for f in found.failures) == 16


def test_a_stop_among_the_quarters_runs_no_more_and_accounts_for_every_item() -> None:
    """The halves fail alike, then the job ends (or time runs out) while the quarters run:
    no quarter runs after stop() says so, and every item is still counted."""
    items = [f"item-{i:02d}" for i in range(16)]
    run, calls = _runner(items, {"item-01", "item-09"})
    error = TryError(TryPhase.RUN, "ValueError", "corrupt input item-01", "tb")
    answers = iter(["", "the job was canceled"])  # go on for the first half's halves only
    found = isolate(16, error, run, tries=2, stop=lambda: next(answers, "the job was canceled"))
    assert len(calls) == found.runs == 4  # both halves, then the first half's two halves
    assert found.gave_up == "the job was canceled"
    outcome = combine(found, "text", 0.0, "w")
    assert outcome.items == 16 and outcome.succeeded + outcome.failed == 16
    assert outcome.succeeded == 4  # the clean quarter [4, 8) kept its rows
    assert [(f.position, f.count) for f in found.failures] == [(0, 4), (8, 8)]


def test_the_quarters_respect_the_run_budget() -> None:
    items = [f"item-{i:02d}" for i in range(16)]
    run, calls = _runner(items, {"item-01", "item-09"})
    error = TryError(TryPhase.RUN, "ValueError", "corrupt input item-01", "tb")
    found = isolate(16, error, run, tries=1, max_runs=3)
    assert len(calls) == found.runs == 2  # two more would pass the budget of 3
    assert found.gave_up == "stopped after 2 isolation runs"
    assert sum(f.count for f in found.failures) == 16


def test_rows_over_the_output_limit_are_split_though_every_half_fails_alike() -> None:
    """Each item returns 1 MB: any span of more than two items is too large, whatever its
    items — splitting, not giving up, scores them all."""
    calls: list[Span] = []

    def run(span: Span) -> TryOutcome:
        calls.append(span)
        size = span.planned(16)
        if size > 2:
            error = TryError(TryPhase.RETURN, "OutputTooLarge",
                             f"run() returned {size} MB of rows; the limit is 2 MB", "")
            return TryOutcome.failure(error, size, 0.1, "w")
        part, header = format_rows([f"r{i}" for i in range(span.start, span.start + size)],
                                   "text", False)
        return TryOutcome(size, size, 0, size, part, header, None, 0.1, "w")

    error = TryError(TryPhase.RETURN, "OutputTooLarge",
                     "run() returned 16 MB of rows; the limit is 2 MB", "")
    found = isolate(16, error, run, tries=1)
    assert not found.gave_up and not found.failures
    outcome = combine(found, "text", 0.0, "w")
    assert outcome.part.decode().splitlines() == [f"r{i}" for i in range(16)]
    assert (outcome.succeeded, outcome.failed, outcome.error) == (16, 0, None)


def test_rows_beyond_an_estimate_are_never_dropped() -> None:
    """Text cut by bytes: 6 rows planned, 9 read — the last span reaches the end."""
    items = [f"r{i}" for i in range(9)]
    run, calls = _runner(items, {"r8"}, actual=9)
    found = isolate(6, BAD, run, tries=3)
    outcome = combine(found, "text", 0.0, "w")
    assert outcome.part.decode().splitlines() == [f"r{i} ok" for i in range(8)]
    assert outcome.items == 9 and outcome.failed == 1
    # the rightmost span always reaches the end; the bad row is isolated by the rows read
    assert (8, None) in [(s.start, s.stop) for s in calls]
    assert [(f.position, f.count) for f in found.failures] == [(8, 1)]


def test_parquet_parts_of_the_scored_spans_are_merged_in_order() -> None:
    items = [f"f{i}" for i in range(6)]
    run, _ = _runner(items, {"f2"}, fmt="parquet")
    outcome = combine(isolate(6, BAD, run, tries=1), "parquet", 0.0, "w")
    table = pq.read_table(pa.BufferReader(outcome.part))
    assert table.column("result").to_pylist() == [f"f{i} ok" for i in (0, 1, 3, 4, 5)]


def test_every_span_scoring_after_all_gives_a_success() -> None:
    """A flaky failure that does not come back on smaller runs: nothing fails."""
    ok_part = io.BytesIO(b"x ok\n").getvalue()

    def run(span: Span) -> TryOutcome:
        n = span.planned(4)
        return TryOutcome(n, n, 0, n, ok_part * n, None, None, 0.0, "w")

    outcome = combine(isolate(4, BAD, run, tries=3), "text", 0.0, "w")
    assert outcome.ok and outcome.succeeded == 4 and outcome.rows == 4


def test_combine_of_nothing_scored() -> None:
    outcome = combine(Isolation(), "csv", 0.0, "w")
    assert (outcome.items, outcome.rows, outcome.part) == (0, 0, b"")


def _rows_runner(actual: int, bad: set[int], *, raise_on_empty: bool):
    """A tabular run(span): rows [start, stop) of ``actual`` real rows (a window past the
    end is empty), failing on a bad row, or on no rows at all like sklearn's predict."""
    def run(span: Span) -> TryOutcome:
        rows = range(span.start, min(span.stop if span.stop is not None else actual, actual))
        if any(r in bad for r in rows) or (raise_on_empty and not rows):
            error = TryError(TryPhase.RUN, "ValueError", f"bad rows near {rows}", "tb")
            return TryOutcome.failure(error, len(rows), 0.0, "w")
        part = "".join(f"{r}\n" for r in rows).encode()
        return TryOutcome(len(rows), len(rows), 0, len(rows), part, None, None, 0.0, "w")
    return run


@pytest.mark.parametrize(("planned", "actual"), [(1000, 3000), (69, 48), (10, 10)])
@pytest.mark.parametrize("raise_on_empty", [False, True])
def test_counts_stay_exact_whatever_the_row_estimate(planned: int, actual: int,
                                                      raise_on_empty: bool) -> None:
    """Resuming uses the plan's estimate; the runs' own row counts correct it."""
    bad = {actual - 2, actual // 3}
    found = isolate(planned, BAD, _rows_runner(actual, bad, raise_on_empty=raise_on_empty),
                    tries=1)
    outcome = combine(found, "text", 0.0, "w", file_inputs=False)
    assert [(f.position, f.count) for f in found.failures] == [(r, 1) for r in sorted(bad)]
    assert (outcome.items, outcome.failed, outcome.succeeded) == (actual, 2, actual - 2)
    assert outcome.part.decode().split() == [str(r) for r in range(actual) if r not in bad]


def test_spans_typing_a_column_differently_are_joined_not_dropped() -> None:
    """Single-row spans type an all-None prediction as null: the others decide its type."""
    values = [1.5, 2.5, "raise", None]

    def run(span: Span) -> TryOutcome:
        chosen = values[span.start:span.stop]
        if "raise" in chosen:
            return TryOutcome.failure(BAD, len(chosen), 0.0, "w")
        part, _ = format_rows([{"p": v} for v in chosen], "parquet", False)
        n = len(chosen)
        return TryOutcome(n, n, 0, n, part, None, None, 0.0, "w")

    outcome = combine(isolate(4, BAD, run, tries=1), "parquet", 0.0, "w")
    table = pq.read_table(pa.BufferReader(outcome.part))
    assert table.column("p").to_pylist() == [1.5, 2.5, None]
    assert outcome.succeeded == 3 and outcome.failed == 1


def test_spans_returning_other_csv_columns_fail_clearly_instead_of_misaligning() -> None:
    def run(span: Span) -> TryOutcome:
        if span.start == 0 and span.stop is None:
            return TryOutcome.failure(BAD, 4, 0.0, "w")
        if span.planned(4) > 1 and span.start == 0:
            return TryOutcome.failure(BAD, 2, 0.0, "w")
        rows = [{"a": 1, "warn": "x"}] if span.start == 1 else [{"a": 1}] * span.planned(4)
        part, header = format_rows(rows, "csv", False)
        n = span.planned(4)
        return TryOutcome(n, n, 0, len(rows), part, header, None, 0.0, "w")

    with pytest.raises(OutputError, match="returned different columns"):
        combine(isolate(4, BAD, run, tries=1), "csv", 0.0, "w")
