"""Isolating the bad items of a mini-batch that used up its tries. Pure: no storage, no
processes — the scorer hands in how to run a span of items.

Azure ML fails every item of such a mini-batch, so one corrupt file costs its nine
neighbours too. Here the mini-batch is split in halves and each half run once; a half
that succeeds keeps its rows, a half that fails is split again, down to single items.
One bad item among ``n`` costs about ``2·log2(n)`` extra runs.

Isolation gives up (every item left counts as failed, with the error seen) when:

* the failure does not depend on the items: both halves, and then their four halves, fail
  with the error of the whole mini-batch (a script bug, a model that cannot load its
  weights) — six runs, not ``2n``. One level is not enough: two bad files, one in each
  half, fail both halves with errors that differ only in the numbers of their names.
  Rows over the output limit never end splitting this way: smaller spans return fewer;
* the error is not about items: the script could not be loaded or ``init()`` failed;
* ``max_runs`` runs were spent, or ``stop()`` says why not to go on: the job ended
  meanwhile (canceled, aborted), or the time the host gives one invocation runs out.

Spans of tabular mini-batches cut from text files by bytes know their row count only
approximately, so the last span of every split reaches "to the end" (``stop`` None):
no row beyond an estimate is ever dropped.
"""

from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from batchfx.core.errors import OutputError
from batchfx.core.output_layout import combine_segments
from batchfx.core.row_format import read_parquet_part
from batchfx.core.script_contract import TryError, TryOutcome, TryPhase

__all__ = [
    "MAX_ISOLATION_RUNS",
    "Isolation",
    "ItemFailure",
    "Span",
    "combine",
    "isolate",
    "may_isolate",
]

MAX_ISOLATION_RUNS = 100

# Errors that say nothing about the items: splitting the mini-batch cannot help.
_NOT_ABOUT_ITEMS = {TryPhase.LOAD, TryPhase.INIT, TryPhase.INPUT}


@dataclass(frozen=True)
class Span:
    """Items ``[start, stop)`` of a mini-batch (``stop`` None: to its end); ``depth`` is
    how many isolation runs these items took part in, this span's included."""

    start: int
    stop: int | None
    depth: int

    def planned(self, total: int) -> int:
        """Items in the span as far as planned (``total``: the mini-batch's items)."""
        return max(0, (self.stop if self.stop is not None else total) - self.start)

    def halves(self, total: int) -> tuple[Span, Span] | None:
        """The two halves, or None for a single item."""
        size = self.planned(total)
        if size < 2:
            return None
        middle = self.start + size // 2
        return (Span(self.start, middle, self.depth + 1),
                Span(middle, self.stop, self.depth + 1))


@dataclass(frozen=True)
class ItemFailure:
    """Items ``[position, position + count)`` failed with ``error`` after ``tries`` runs."""

    position: int
    count: int
    error: TryError
    tries: int
    alone: bool  # True when the item failed on its own (isolated), not with a whole span


@dataclass
class Isolation:
    """What isolating found: the spans that scored (in order) and the items that failed."""

    succeeded: list[tuple[Span, TryOutcome]] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    runs: int = 0
    gave_up: str = ""  # why isolation stopped before single items, if it did


def may_isolate(error: TryError | None, items: int) -> bool:
    """Whether a mini-batch that failed with ``error`` is worth splitting."""
    return error is not None and items > 1 and error.phase not in _NOT_ABOUT_ITEMS


def _same(a: TryError, b: TryError) -> bool:
    """Same failure, ignoring numbers (pids, timings, counts differ between runs)."""
    def norm(text: str) -> str:
        return re.sub(r"\d+", "#", text)
    return a.phase == b.phase and a.type == b.type and norm(a.message) == norm(b.message)


def isolate(total: int, error: TryError, run: Callable[[Span], TryOutcome], *, tries: int,
            max_runs: int = MAX_ISOLATION_RUNS,
            stop: Callable[[], str] = lambda: "") -> Isolation:
    """Split items ``[0, total)`` that failed with ``error`` after ``tries`` tries.

    ``run(span)`` runs the script once on the span's items; ``stop()`` says why to stop
    before the next run ("" to go on). Every item ends in one succeeded span or failure.
    """
    result = Isolation()
    root = Span(0, None, 0)
    halves = root.halves(total)
    if halves is None or not may_isolate(error, total):
        result.failures.append(ItemFailure(0, total, error, tries, alone=total == 1))
        result.gave_up = "nothing to split"
        return result
    first, second = halves
    pending: deque[tuple[Span, TryError]] = deque()
    # Both halves first: if each fails as the whole did, the items may not be the cause.
    outcomes = [(span, run(span)) for span in (first, second)]
    result.runs = 2
    if _all_same(outcomes, error) and not _about_size(error):
        # Two bad items, one in each half, look the same (their errors differ only by
        # numbers in file names): the quarters tell them apart from a script bug.
        deeper, runs, why = _deeper(outcomes, run, total, done=result.runs,
                                    max_runs=max_runs, stop=stop)
        result.runs += runs
        if not why and runs and _all_same(deeper, error):
            for span, outcome in deeper:
                assert outcome.error is not None
                result.failures.append(_failure(span, outcome, outcome.error, tries, total))
            result.gave_up = ("both halves and their halves failed with the mini-batch's "
                              "own error, so the failure does not depend on particular items")
            return _in_order(result)
        result.gave_up = why  # stopped among the quarters: what did not run counts failed
        outcomes = deeper  # single items that each failed stand as failures
    _settle(result, outcomes, pending, tries, total)
    while pending:
        span, parent_error = pending.popleft()
        why = _why_stop(result.runs, 1, max_runs, lambda: result.gave_up or stop())
        if why:
            result.gave_up = why
            result.failures.append(ItemFailure(span.start, span.planned(total), parent_error,
                                               tries + span.depth - 1, alone=False))
            continue
        outcome = run(span)
        result.runs += 1
        _settle(result, [(span, outcome)], pending, tries, total)
    return _in_order(result)


def _in_order(result: Isolation) -> Isolation:
    """The failures by position, without empty ones (windows past the last row)."""
    result.failures = sorted((f for f in result.failures if f.count),
                             key=lambda f: f.position)
    return result


def _why_stop(done: int, needed: int, max_runs: int, stop: Callable[[], str]) -> str:
    """Why not to make ``needed`` more runs after ``done`` ("" to go on): the run budget
    first, then ``stop()``."""
    if done + needed > max_runs:
        return f"stopped after {done} isolation runs"
    return stop()


def _all_same(outcomes: list[tuple[Span, TryOutcome]], error: TryError) -> bool:
    return bool(outcomes) and all(not o.ok and o.error and _same(o.error, error)
                                  for _, o in outcomes)


def _about_size(error: TryError) -> bool:
    """Rows over the output limit: many items' rows together are too large, so halves
    fail alike while smaller spans succeed — never a reason to give up splitting."""
    return error.type == "OutputTooLarge"


def _deeper(outcomes: list[tuple[Span, TryOutcome]], run: Callable[[Span], TryOutcome],
            total: int, *, done: int, max_runs: int, stop: Callable[[], str],
            ) -> tuple[list[tuple[Span, TryOutcome]], int, str]:
    """Each failed span's halves, run once (a single item keeps its outcome), and why it
    stopped early, if it did: a span whose halves did not run keeps its own outcome."""
    deeper: list[tuple[Span, TryOutcome]] = []
    runs = 0
    why = ""
    for span, outcome in outcomes:
        seen, known = _seen(span, outcome, total)
        halves = seen.halves(known)
        why = why or _why_stop(done + runs, 2, max_runs, stop)
        if halves is None or why:
            deeper.append((span, outcome))
            continue
        for half in halves:
            deeper.append((half, run(half)))
            runs += 1
    return deeper, runs, why


def _settle(result: Isolation, outcomes: list[tuple[Span, TryOutcome]],
            pending: deque[tuple[Span, TryError]], tries: int, total: int) -> None:
    """Keep what scored; split what failed (in order, before anything later), unless
    isolation has given up: then what failed counts as failed, as it ran."""
    split: list[tuple[Span, TryError]] = []
    for span, outcome in outcomes:
        if outcome.ok:
            result.succeeded.append((span, outcome))
            continue
        assert outcome.error is not None
        if outcome.items == 0:
            continue  # a window past the last row: no items, so none failed
        span, known = _seen(span, outcome, total)
        halves = span.halves(known)
        if (halves is None or result.gave_up
                or not may_isolate(outcome.error, span.planned(known))):
            result.failures.append(_failure(span, outcome, outcome.error, tries, known))
        else:
            split += [(half, outcome.error) for half in halves]
    pending.extendleft(reversed(split))


def _seen(span: Span, outcome: TryOutcome, total: int) -> tuple[Span, int]:
    """The span and the mini-batch's end as its run saw them: the rows of tabular text cut
    by bytes are only estimated, and a run counts the rows it read."""
    if span.stop is None:
        return span, span.start + outcome.items
    if outcome.items < span.planned(total):  # the real end lies inside the span
        return Span(span.start, span.start + outcome.items, span.depth), total
    return span, total


def _failure(span: Span, outcome: TryOutcome, error: TryError, tries: int,
             total: int) -> ItemFailure:
    return ItemFailure(span.start, outcome.items, error, tries + span.depth,
                       alone=outcome.items <= 1)


def combine(isolation: Isolation, output_format: str, seconds: float,
            worker: str, *, file_inputs: bool = True) -> TryOutcome:
    """One outcome for the mini-batch: the scored spans' rows in order, failures counted.

    Its ``error`` is the first failed item's (None when every span scored after all). The
    rows' input files (``segments``, for per_input_file outputs) are shifted by each span's
    start for file inputs; tabular windows report the mini-batch's own slice positions.
    """
    scored = sorted(isolation.succeeded, key=lambda pair: pair[0].start)
    outcomes = [o for _, o in scored]
    failed_items = sum(f.count for f in isolation.failures)
    part = _join_parts([o.part for o in outcomes], output_format)
    headers = list(dict.fromkeys(o.header for o in outcomes if o.header))
    if len(headers) > 1:  # CSV lines under a header of other columns would be misread
        first, other = (h.decode("utf-8", "replace").strip() for h in headers[:2])
        raise OutputError(f"the parts of this mini-batch that were scored apart returned "
                          f"different columns ({first!r}, then {other!r}); make run() return "
                          "the same columns for any rows, or use output_format 'jsonl'")
    header = headers[0] if headers else None
    failures = sorted(isolation.failures, key=lambda f: f.position)
    return TryOutcome(
        items=sum(o.items for o in outcomes) + failed_items,
        succeeded=sum(o.succeeded for o in outcomes),
        failed=sum(o.failed for o in outcomes) + failed_items,
        rows=sum(o.rows for o in outcomes),
        part=part,
        header=header,
        error=failures[0].error if failures else None,
        seconds=seconds,
        worker=worker,
        segments=combine_segments(
            (span.start if file_inputs else 0, o) for span, o in scored),
    )


def _join_parts(parts: list[bytes], output_format: str) -> bytes:
    parts = [p for p in parts if p]
    if output_format != "parquet" or len(parts) <= 1:
        return b"".join(parts)
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [read_parquet_part(p) for p in parts]
    try:  # spans of a few rows type an all-None column as null: let the others decide
        joined = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise OutputError(f"the rows run() returned for the parts of this mini-batch that "
                          f"were scored apart have different columns or types ({exc}); "
                          "make run() return the same columns and types for any rows") from exc
    sink = io.BytesIO()
    pq.write_table(joined, sink)
    return sink.getvalue()
