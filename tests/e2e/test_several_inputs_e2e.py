"""A job of several inputs (ParallelRunStep's inputs=[...]): each partitioned in turn, every
item scored once, in input order, and reports naming items after their input."""

from __future__ import annotations

import csv
import io

from e2e_app import App, lines


def test_two_file_inputs_are_scored_in_order_and_failures_named_by_input(app: App) -> None:
    first = app.upload_inputs({f"{i}.txt": f"a{i}" for i in range(5)}, prefix="day1")
    second = app.upload_inputs({"0.txt": "b0", "1.txt": "bad", "2.txt": "b2"}, prefix="day2")
    spec = app.spec("raises_on_bad.py", {}, run_max_try=1, mini_batch_size=2,
                    inputs=[{"path": first, "name": "monday"}, second])
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed", view
    assert view["items"]["total"] == 8 and view["items"]["failed"] == 1
    out = app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == [
        *[f"{i}.txt ok" for i in range(5)], "0.txt ok", "2.txt ok"]
    errors = list(csv.DictReader(io.StringIO(out["errors.csv"])))
    assert [e["item"] for e in errors] == ["input_2/1.txt"]
    report = list(csv.DictReader(io.StringIO(out["processed_mini-batches.csv"])))
    assert len(report) == 3 + 2  # 5 files of the first input by 2, then 3 of the second


def test_two_tabular_inputs_are_read_one_after_the_other(app: App) -> None:
    for name, start in (("a.csv", 0), ("b.csv", 100)):
        body = "id\n" + "".join(f"{i}\n" for i in range(start, start + 100))
        app.upload_tabular(f"{name[0]}/{name}", body.encode())
    container = app.settings.jobs_container
    spec = app.tabular_spec("tabular-two", "tabular_echo.py", f"{container}/tabular/a", "csv",
                            mini_batch_size="50 rows")
    spec["inputs"] = [spec["inputs"], {**spec["inputs"], "path": f"{container}/tabular/b"}]
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed", view
    text = app.outputs(view)["parallel_run_step.txt"]
    ids = [int(row["id"]) for row in csv.DictReader(io.StringIO(text))]
    assert ids == list(range(200))
    assert view["mini_batches"]["total"] == 4
