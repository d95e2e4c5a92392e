"""Failure thresholds abort exactly when a count exceeds its limit (Azure ML's rule)."""

from __future__ import annotations

import pytest
from e2e_app import App


def _files(n: int, bad: set[int]) -> dict[str, str]:
    return {f"item-{i:03d}.txt": ("bad" if i in bad else "ok") for i in range(n)}


# 8 items in 4 mini-batches of 2; items 0, 2 and 4 are bad (one per mini-batch in the
# first three). fail_some.py drops the bad items: 3 failed items. raises_on_bad.py raises:
# 3 failed mini-batches of 4 (75%).
@pytest.mark.parametrize(
    ("script", "limits", "state"),
    [
        ("fail_some.py", {"error_threshold": 3}, "completed"),
        ("fail_some.py", {"error_threshold": 2}, "aborted"),
        ("raises_on_bad.py", {"allowed_failed_count": 3}, "completed"),
        ("raises_on_bad.py", {"allowed_failed_count": 2}, "aborted"),
        ("raises_on_bad.py", {"allowed_failed_percent": 75}, "completed"),
        ("raises_on_bad.py", {"allowed_failed_percent": 74}, "aborted"),
        ("raises_on_bad.py", {"error_threshold": -1, "allowed_failed_count": -1}, "completed"),
    ],
)
def test_threshold_boundary(app: App, script: str, limits: dict[str, int], state: str) -> None:
    spec = app.spec(script, _files(8, bad={0, 2, 4}), mini_batch_size=2, run_max_try=1,
                    process_count_per_node=1, **limits)
    view = app.wait(app.submit(spec))
    assert view["state"] == state, view
    field = next(iter(limits))
    if state == "aborted":
        assert field in view["reason"]
        out = app.outputs(view)
        assert "status: aborted" in out["job_result.txt"]
        assert "parallel_run_step.txt" not in out
    else:
        assert "parallel_run_step.txt" in app.outputs(view)


def test_abort_stops_the_remaining_mini_batches(app: App) -> None:
    files = {f"item-{i:03d}.txt": ("bad" if i == 0 else "ok") for i in range(40)}
    # Scoring the 39 good ones takes seconds (0.2 s each), many checks of the job.
    spec = app.spec("raises_on_bad.py", files, mini_batch_size=1, run_max_try=1,
                    allowed_failed_count=0, environment_variables={"OK_SECONDS": "0.2"})
    view = app.wait(app.submit(spec))
    assert view["state"] == "aborted"
    assert view["mini_batches"]["failed"] == 1
    # Scorers drop the aborted job's messages: far from all 40 were scored.
    done = view["mini_batches"]["succeeded"] + view["mini_batches"]["failed"]
    assert done < 40
    assert "allowed_failed_count=0" in view["reason"]
