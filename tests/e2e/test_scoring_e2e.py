"""A job through the HTTP function, the queue workers and the orchestrator, on Azurite."""

from __future__ import annotations

import csv
import io

from e2e_app import App, lines


def _files(n: int, bad: set[int] | None = None) -> dict[str, str]:
    return {f"item-{i:03d}.txt": ("bad\n" if i in (bad or set()) else f"value {i}\n")
            for i in range(n)}


def test_echo_job_writes_every_row_once_in_input_order(app: App) -> None:
    job = app.submit(app.spec("echo.py", _files(9), mini_batch_size=2))
    view = app.wait(job)
    assert view["state"] == "completed"
    assert view["items"] == {"total": 9, "succeeded": 9, "failed": 0, "pending": 0}
    assert view["mini_batches"]["total"] == 5
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == [f"item-{i:03d}.txt value {i}"
                                                    for i in range(9)]
    assert "status: completed" in out["job_result.txt"]


def test_items_not_returned_count_as_failed(app: App) -> None:
    job = app.submit(app.spec("fail_some.py", _files(6, bad={1, 4}), mini_batch_size=3))
    view = app.wait(job)
    assert view["state"] == "completed"
    assert view["items"]["succeeded"] == 4
    assert view["items"]["failed"] == 2
    out = app.outputs(view)
    assert len(lines(out["parallel_run_step.txt"])) == 4
    errors = list(csv.DictReader(io.StringIO(out["errors.csv"])))
    assert [e["error_type"] for e in errors] == ["MissingResults", "MissingResults"]


def test_failing_mini_batch_is_tried_run_max_try_times_then_its_bad_item_isolated(
        app: App) -> None:
    job = app.submit(app.spec("raises_on_bad.py", _files(4, bad={2}), mini_batch_size=2,
                              run_max_try=2))
    view = app.wait(job)
    assert view["state"] == "completed"
    # item-003 shared a mini-batch with the corrupt item-002: split off, it still scores
    assert view["items"] == {"total": 4, "succeeded": 3, "failed": 1, "pending": 0}
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == ["item-000.txt ok", "item-001.txt ok",
                                                   "item-003.txt ok"]
    report = list(csv.DictReader(io.StringIO(out["processed_mini-batches.csv"])))
    assert [(r["status"], r["tries"], r["succeeded"], r["failed"]) for r in report] == [
        ("succeeded", "1", "2", "0"), ("failed", "2", "1", "1")]
    # The worker column names the script process as its log file is named.
    assert f"logs/{report[0]['worker']}.log" in out
    errors = list(csv.DictReader(io.StringIO(out["errors.csv"])))
    assert [(e["item"].rsplit("/", 1)[-1], e["tries"], e["error_type"]) for e in errors] == [
        ("item-002.txt", "3", "ValueError")]  # 2 tries of the mini-batch, 1 alone
    assert "failed on its own" in errors[0]["reason"]
    assert "cannot score item-002.txt: corrupt input" in out["errors.txt"]
    assert 'score.py", line' in out["errors.txt"]  # the script's own traceback


def test_hung_run_is_stopped_at_run_invocation_timeout_and_the_worker_recovers(
        app: App) -> None:
    files = {"a.txt": "1", "b.txt": "2", "hang.txt": "3", "z.txt": "4"}
    job = app.submit(app.spec("hangs.py", files, mini_batch_size=1, run_invocation_timeout=2,
                              run_max_try=1, process_count_per_node=1))
    view = app.wait(job)
    assert view["state"] == "completed"
    assert view["items"]["failed"] == 1
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == ["a.txt", "b.txt", "z.txt"]
    assert "run_invocation_timeout=2s" in out["errors.txt"]


def test_init_failure_fails_the_job_with_the_scripts_traceback(app: App) -> None:
    job = app.submit(app.spec("init_raises.py", _files(6), mini_batch_size=2, run_max_try=2))
    view = app.wait(job)
    assert view["state"] == "failed"
    assert "model file missing" in view["error"]
    assert "init_raises" in view["error"] or 'score.py", line' in view["error"]
    assert "SystemExit" not in view["error"]
    assert "parallel_run_step.txt" not in app.outputs(view)


def test_wrong_return_type_is_a_failed_try_naming_the_type(app: App) -> None:
    job = app.submit(app.spec("returns_none.py", _files(2), mini_batch_size=2, run_max_try=1))
    view = app.wait(job)
    assert view["items"]["failed"] == 2
    assert "run() returned NoneType" in app.outputs(view)["errors.txt"]


def test_each_job_runs_its_own_copy_of_the_code(app: App) -> None:
    spec = app.spec("leaves_a_file.py", {"a.txt": "1"})
    for _ in range(2):  # the same code: a file the first job's init() wrote is not there
        view = app.wait(app.submit(spec))
        assert lines(app.outputs(view)["parallel_run_step.txt"]) == ["a.txt seen=False"]
