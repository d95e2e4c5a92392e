"""The job orchestrator's decisions without the Durable SDK: when to partition, when to
check progress, how long to wait, and when to end the job (``watch_steps``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchfx.core.progress import Action
from batchfx.core.watch_steps import (
    QUEUE_WINDOW,
    CheckResult,
    PartitionStep,
    WatchState,
    next_step,
)

NOW = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)


def test_the_state_crosses_continue_as_new_as_the_same_json_object() -> None:
    # What the HTTP function starts the orchestration with, and an older execution's state
    # (a key this version does not know is kept).
    fresh = WatchState.from_input({"job_id": "j1", "poll_s": 1.0})
    assert (fresh.partitioned, fresh.backlog, fresh.window) == (False, 0, QUEUE_WINDOW)
    old = {"job_id": "j1", "poll_s": 5, "partitioned": True, "backlog": 3, "queued": 9,
           "window": 200, "next_check": NOW.isoformat(), "later": [1]}
    state = WatchState.from_input(old)
    assert state.to_input() == {**old, "poll_s": 5.0}
    assert WatchState.from_input(state.to_input()) == state


def test_partitioning_waits_for_the_queue_to_drain_below_the_window() -> None:
    state = WatchState("j1", window=10)
    assert state.wants_partition()
    again = state.partitioned_by(PartitionStep(False, 10, window=10), NOW)
    assert (state.backlog, state.queued) == (10, 10) and not again  # full: check first
    assert not state.wants_partition()
    next_step(state, CheckResult(Action.WAIT, backlog=4), NOW)
    assert state.wants_partition()  # 4 left of 10: room again
    state.partitioned_by(PartitionStep(True, 16, window=10), NOW)
    assert (state.backlog, state.queued, state.partitioned) == (10, 16, True)
    assert not state.wants_partition()


def test_a_partition_step_with_room_goes_on_before_the_next_check_is_due() -> None:
    state = WatchState("j1", next_check=(NOW + timedelta(seconds=3)).isoformat())
    assert state.partitioned_by(PartitionStep(False, 500), NOW)  # room, check not due yet
    assert not state.partitioned_by(PartitionStep(False, 600), NOW + timedelta(seconds=4))


@pytest.mark.parametrize(("partitioned", "backlog", "timer"), [
    (True, 0, True), (False, 10, True), (False, 3, False)])
def test_a_wait_sets_the_next_check_and_a_timer_only_when_partitioning_need_not_go_on(
        partitioned: bool, backlog: int, timer: bool) -> None:
    state = WatchState("j1", poll_s=5.0, partitioned=partitioned, window=10)
    decision = next_step(state, CheckResult(Action.WAIT, wait_s=2.0, backlog=backlog), NOW)
    assert decision.end is None
    assert decision.timer_at == (NOW + timedelta(seconds=2) if timer else None)
    assert state.next_check == (NOW + timedelta(seconds=2)).isoformat()
    assert state.backlog == backlog


def test_a_missed_check_waits_the_poll_interval_and_keeps_the_backlog() -> None:
    state = WatchState("j1", poll_s=5.0, partitioned=True, backlog=7)
    decision = next_step(state, CheckResult(Action.WAIT), NOW)
    assert decision.timer_at == NOW + timedelta(seconds=5) and state.backlog == 7


@pytest.mark.parametrize("action", [Action.FINALIZE, Action.ABORT, Action.FAIL, Action.END])
def test_any_other_verdict_ends_the_job_as_the_check_says(action: Action) -> None:
    check = CheckResult(action, "canceled" if action is Action.END else "completed", "why")
    decision = next_step(WatchState("j1"), check, NOW)
    assert decision.timer_at is None
    assert decision.end == {"job_id": "j1", "outcome": check.outcome, "reason": "why"}


def test_activity_answers_round_trip_through_their_json() -> None:
    for check in (CheckResult(Action.WAIT, wait_s=0.5, backlog=3),
                  CheckResult(Action.END, "canceled", "by user")):
        assert CheckResult.from_activity(check.to_activity()) == check
    step = PartitionStep(True, 12, 120, 7)
    assert PartitionStep.from_activity(step.to_activity()) == step
    assert CheckResult.from_activity({"action": "end", "outcome": "canceled",
                                      "reason": None}).action is Action.END
