"""Bad-item isolation end to end: a mini-batch that used up its tries is split so that a
corrupt item fails alone and its neighbours are scored, each failure named with its error
and try count in the errors file."""

from __future__ import annotations

import csv
import io
import os
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd
from e2e_app import App, lines


def _errors(out: dict[str, str]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out["errors.csv"])))


def test_a_corrupt_file_fails_alone_and_its_nine_neighbours_are_scored(app: App) -> None:
    files = {f"item-{i:03d}.txt": ("bad" if i == 6 else "ok") for i in range(20)}
    view = app.wait(app.submit(app.spec("raises_on_bad.py", files, mini_batch_size=10,
                                        run_max_try=3)))
    assert view["state"] == "completed", view
    assert view["items"] == {"total": 20, "succeeded": 19, "failed": 1, "pending": 0}
    assert view["mini_batches"]["failed"] == 1  # Azure ML's count: a mini-batch with failures
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == [f"item-{i:03d}.txt ok" for i in range(20)
                                                   if i != 6]
    [error] = _errors(out)
    assert error["item"] == "item-006.txt"  # relative to the input folder, as in Azure ML
    assert error["mini_batch_id"] == "0000000"
    assert error["error_type"] == "ValueError"
    assert error["error"] == "cannot score item-006.txt: corrupt input"
    # 3 tries of the whole mini-batch, then one run per level of the split down to it
    assert 3 + 2 <= int(error["tries"]) <= 3 + 4
    assert "=== mini-batch 0000000: failed after 3 tries; split to isolate" in out["errors.txt"]
    assert 'score.py", line' in out["errors.txt"]


def test_two_corrupt_files_one_in_each_half_both_fail_alone(app: App) -> None:
    # Their errors differ only in the digits of the names, so both halves fail "as the
    # whole did": the quarters must show it is the items, not the script.
    files = {f"item-{i:03d}.txt": ("bad" if i in (3, 12) else "ok") for i in range(16)}
    view = app.wait(app.submit(app.spec("raises_on_bad.py", files, mini_batch_size=16,
                                        run_max_try=1)))
    assert view["state"] == "completed", view
    assert view["items"] == {"total": 16, "succeeded": 14, "failed": 2, "pending": 0}
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == [f"item-{i:03d}.txt ok" for i in range(16)
                                                   if i not in (3, 12)]
    errors = _errors(out)
    assert [e["item"] for e in errors] == ["item-003.txt", "item-012.txt"]
    assert [e["error"] for e in errors] == [f"cannot score item-{i:03d}.txt: corrupt input"
                                            for i in (3, 12)]


def test_a_hanging_item_is_isolated_by_its_timeout(app: App) -> None:
    files = {"a.txt": "1", "b.txt": "2", "hang.txt": "3", "z.txt": "4"}
    view = app.wait(app.submit(app.spec("hangs.py", files, mini_batch_size=4,
                                        run_invocation_timeout=2, run_max_try=1,
                                        process_count_per_node=1)), timeout=180)
    assert view["state"] == "completed", view
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == ["a.txt", "b.txt", "z.txt"]
    [error] = _errors(out)
    assert error["item"] == "hang.txt" and error["error_type"] == "TimeoutError"


def test_a_failure_of_every_item_is_not_split_item_by_item(app: App) -> None:
    files = {f"item-{i:03d}.txt": "ok" for i in range(8)}
    view = app.wait(app.submit(app.spec("returns_none.py", files, mini_batch_size=8,
                                        run_max_try=1)))
    assert view["state"] == "completed", view
    assert view["items"]["failed"] == 8
    errors = _errors(app.outputs(view))
    assert len(errors) == 8 and {e["error_type"] for e in errors} == {"TypeError"}
    assert all("does not depend on particular items" in e["reason"] for e in errors)
    assert {e["tries"] for e in errors} == {"3"}  # one try, its half, its quarter


def test_a_corrupt_row_of_a_tabular_mini_batch_fails_alone(app: App) -> None:
    rows = 2000
    values = ["bad" if i == 1234 else str(i) for i in range(rows)]
    body = pd.DataFrame({"id": range(rows), "value": values}).to_csv(index=False).encode()
    container = app.settings.jobs_container
    app.storage.blobs.upload(container, "tabular/rows.csv", body)
    spec = {
        "name": "isolate-rows",
        "entry_script": "score.py",
        "source_directory": app.upload_script("tabular_raises_on_bad.py"),
        "inputs": {"path": f"{container}/tabular/rows.csv", "type": "tabular",
                   "format": "csv"},
        "output": f"{container}-out/results",
        "output_format": "csv",
        "mini_batch_size": "500 rows",
        "run_max_try": 1,
    }
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed", view
    assert view["items"] == {"total": rows, "succeeded": rows - 1, "failed": 1, "pending": 0}
    out = app.outputs(view)
    scored = pd.read_csv(io.StringIO(out["parallel_run_step.txt"]))
    assert scored["id"].tolist() == [i for i in range(rows) if i != 1234]
    assert (scored["double"] == scored["id"] * 2).all()
    [error] = _errors(out)
    # mini-batch 2 holds rows 1000-1499: the bad one is its row 234
    assert error["mini_batch_id"] == "0000002"
    assert error["item"].startswith("row 234 of mini-batch 0000002 (")
    assert "rows.csv" in error["item"]
    assert error["error"] == "row with id 1234 is corrupt"


def _stall_and_kill(app: App, markers: Path, times: int) -> dict[str, Any]:
    """Run a 4-file mini-batch with one bad file; kill the workers in ``times`` isolations."""
    markers.mkdir()
    files = {f"item-{i}.txt": ("bad" if i == 1 else "ok") for i in range(4)}
    spec = app.spec("isolation_stall.py", files, mini_batch_size=4, run_max_try=1,
                    run_invocation_timeout=120,
                    environment_variables={"STALL_MARKERS": str(markers), "FULL_SIZE": "4",
                                           "STALL_TIMES": str(times)})
    job = app.submit(spec)
    assert app.runner is not None
    for kill in range(1, times + 1):
        deadline = time.monotonic() + 60
        while len(list(markers.iterdir())) < kill:
            assert time.monotonic() < deadline, f"isolation {kill} never started"
            time.sleep(0.1)
        for pid in app.runner.worker_pids:
            os.kill(pid, signal.SIGKILL)
    view = app.wait(job, timeout=120)
    assert view["state"] == "completed", view
    return view


def test_a_worker_killed_while_isolating_is_followed_by_another(app: App,
                                                                tmp_path: Path) -> None:
    view = _stall_and_kill(app, tmp_path / "stalled", times=1)
    assert view["items"] == {"total": 4, "succeeded": 3, "failed": 1, "pending": 0}
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == ["item-0.txt ok", "item-2.txt ok",
                                                   "item-3.txt ok"]
    [error] = _errors(out)
    assert error["item"] == "item-1.txt" and error["error_type"] == "ValueError"


def test_isolation_killed_twice_ends_with_the_mini_batch_failed_and_explained(
        app: App, tmp_path: Path) -> None:
    view = _stall_and_kill(app, tmp_path / "stalled", times=2)
    assert view["items"] == {"total": 4, "succeeded": 0, "failed": 4, "pending": 0}
    out = app.outputs(view)
    errors = _errors(out)
    assert len(errors) == 4 and {e["error_type"] for e in errors} == {"WorkerLost"}
    assert "isolating its bad items stopped without reporting 2 times" in out["errors.txt"]


def test_isolated_mini_batches_keep_each_rows_input_file_for_per_input_file_outputs(
        app: App) -> None:
    files = {f"d{i % 2}/item-{i}.txt": ("bad" if i == 2 else "ok") for i in range(6)}
    view = app.wait(app.submit(app.spec("raises_on_bad.py", files, mini_batch_size=6,
                                        run_max_try=1, output_action="per_input_file")))
    assert view["state"] == "completed", view
    out = app.outputs(view)
    written = {name: text for name, text in out.items() if name.startswith("d")}
    assert written == {f"d{i % 2}/item-{i}.txt": f"item-{i}.txt ok\n" for i in range(6)
                       if i != 2}
    [error] = _errors(out)
    assert error["item"] == "d0/item-2.txt"  # the path under the input folder
