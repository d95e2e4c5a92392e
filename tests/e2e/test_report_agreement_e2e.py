"""Jobs driven to random end states against Azurite: every report agrees with the others,
with the job's view (then and later) and with the rows written.

Each seed draws a job of files that score, fail, return no row or kill their script
process, a mini_batch_size, run_max_try and error_threshold, and whether (and when) the
job is canceled while mini-batches run. ``BATCHFX_REPORT_SEEDS=20`` runs more seeds.
The same checks run over thousands of drawn end states in
tests/unit/test_final_tally_property.py.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from e2e_app import App, lines
from report_checks import check_reports

SEEDS = range(int(os.environ.get("BATCHFX_REPORT_SEEDS", "4")))
KINDS = ["ok"] * 14 + ["bad"] * 2 + ["drop"] * 2 + ["die"]


def _draw(seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    kinds = [rng.choice(KINDS) for _ in range(12)]
    if kinds.count("die") > 1:  # each costs a script start per run: one is enough
        kinds = [k if k != "die" else "ok" for k in kinds]
        kinds[rng.randrange(12)] = "die"
    return {
        "kinds": kinds,
        "mini_batch_size": rng.randint(1, 4),
        "run_max_try": rng.randint(1, 2),
        "error_threshold": rng.choice([-1, 0, 1, 1, 3]),
        # cancel once this many mini-batches started (None: let it end by itself)
        "cancel_after": rng.choice([None, None, None, 2, 4]),
    }


def _wait_for(predicate, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.parametrize("seed", SEEDS)
def test_reports_agree_whatever_end_the_job_comes_to(app: App, tmp_path: Path,
                                                      seed: int) -> None:
    case = _draw(seed)
    kinds: list[str] = case["kinds"]  # type: ignore[assignment]
    files = {f"item-{i:02d}.txt": kind for i, kind in enumerate(kinds)}
    marker = tmp_path / "markers"
    marker.mkdir()
    cancel_after = case["cancel_after"]
    spec = app.spec("mixed_outcomes.py", files, mini_batch_size=case["mini_batch_size"],
                    run_max_try=case["run_max_try"], error_threshold=case["error_threshold"],
                    run_invocation_timeout=60,
                    environment_variables={"MIXED_MARKER_DIR": str(marker),
                                           "MIXED_SECONDS": "0.4" if cancel_after else "0.1"})
    job = app.submit(spec)
    assert app.api is not None
    if cancel_after is not None:
        _wait_for(lambda: len(list(marker.iterdir())) >= cancel_after
                  or app.api.get(job)["state"] not in ("queued", "partitioning", "running"))
        if app.api.get(job)["state"] == "running":
            app.api.cancel(job)
    view = app.wait(job, timeout=300)
    outputs = app.outputs(view)
    counts = check_reports(view, outputs, int(case["error_threshold"]))  # type: ignore[call-overload]
    print(f"seed {seed}: {view['state']} {counts} {case}")

    # Against the output: each row is a file that scores, once.
    if view["state"] == "completed":
        rows = lines(outputs["parallel_run_step.txt"])
        assert len(rows) == len(set(rows)) == counts["succeeded"]
        assert {r.split()[0] for r in rows} <= {n for n, k in files.items() if k == "ok"}
    # No later write changes them: mini-batches running at a cancel finish afterwards.
    # (a slow machine may let them finish later still: then this checks less, never fails)
    time.sleep(2.0)
    later = app.api.get(job)
    for key in ("state", "reason", "items", "mini_batches", "rows", "rows_written"):
        assert later[key] == view[key], key
    again = app.outputs(later)
    for name in ("job_result.txt", "processed_mini-batches.csv", "errors.csv"):
        assert again[name] == outputs[name], name
