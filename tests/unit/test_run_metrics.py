"""What scripts logged with Run.log/tag, merged from every worker's metrics file and
summarized for the job's view (services.run_metrics; write_metrics is covered with storage)."""

from __future__ import annotations

import json
from typing import Any

from batchfx.services.run_metrics import merge_metrics, metrics_summary


def _line(name: str, value: Any, at: float, *, run: str = "step", kind: str = "log") -> str:
    return json.dumps({"run": run, "kind": kind, "name": name, "value": value, "time": at,
                       "pid": 1})


EMPTY: dict[str, Any] = {"metrics": {}, "tags": {}}


def test_nothing_logged() -> None:
    assert merge_metrics([]) == {**EMPTY, "parent": EMPTY}


def test_workers_are_merged_in_time_order() -> None:
    worker_a = [_line("loss", 0.9, 10.0), _line("loss", 0.5, 30.0)]
    worker_b = [_line("loss", 0.7, 20.0), _line("rows", 5, 5.0)]
    merged = merge_metrics(worker_a + worker_b)
    assert merged["metrics"] == {"rows": [5], "loss": [0.9, 0.7, 0.5]}
    assert merged["parent"] == EMPTY


def test_step_and_parent_are_kept_apart() -> None:
    merged = merge_metrics([
        _line("acc", 0.8, 1.0),
        _line("acc", 0.6, 2.0, run="parent"),
        _line("stage", "eval", 3.0, run="parent", kind="tag"),
        _line("odd", 1, 4.0, run="something-else"),
    ])
    assert merged["metrics"] == {"acc": [0.8], "odd": [1]}
    assert merged["tags"] == {}
    assert merged["parent"] == {"metrics": {"acc": [0.6]}, "tags": {"stage": "eval"}}


def test_the_last_tag_wins() -> None:
    merged = merge_metrics([
        _line("stage", "c", 30.0, kind="tag"),
        _line("stage", "a", 10.0, kind="tag"),
        _line("stage", "b", 20.0, kind="tag"),
        _line("owner", "me", 5.0, kind="tag"),
    ])
    assert merged["tags"] == {"stage": "c", "owner": "me"}
    assert merged["metrics"] == {}


def test_every_kind_but_tag_is_a_metric() -> None:
    merged = merge_metrics([
        _line("l", [1, 2], 1.0, kind="list"),
        _line("r", {"a": 1}, 2.0, kind="row"),
        _line("t", {"x": [1]}, 3.0, kind="table"),
    ])
    assert merged["metrics"] == {"l": [[1, 2]], "r": [{"a": 1}], "t": [{"x": [1]}]}


def test_lines_that_are_not_entries_are_skipped() -> None:
    lines = [
        _line("n", 1, 1.0),
        '{"run":"step","kind":"log","name":"n","val',  # a worker killed while writing
        "",
        "not json",
        "[1, 2]",
        '{"run": "step", "value": 3}',  # no name
        _line("n", 2, 2.0),
    ]
    assert merge_metrics(lines)["metrics"] == {"n": [1, 2]}


def test_entries_without_a_time_come_first() -> None:
    lines = [_line("n", "late", 1.0), json.dumps({"name": "n", "value": "untimed"})]
    assert merge_metrics(lines)["metrics"] == {"n": ["untimed", "late"]}


def test_summary_has_the_last_value_and_the_count() -> None:
    merged = merge_metrics([_line("loss", 0.9, 1.0), _line("loss", 0.4, 2.0),
                            _line("ok", True, 3.0), _line("none", None, 4.0),
                            _line("stage", "eval", 5.0, kind="tag")])
    assert metrics_summary(merged) == {
        "metrics": {"loss": {"last": 0.4, "count": 2}, "ok": {"last": True, "count": 1},
                    "none": {"last": None, "count": 1}},
        "tags": {"stage": "eval"},
    }


def test_summary_shortens_long_values() -> None:
    long_text = "x" * 500
    merged = merge_metrics([_line("text", long_text, 1.0),
                            _line("row", {"k": "y" * 300}, 2.0, kind="row"),
                            _line("small", [1, 2], 3.0, kind="list"),
                            _line("note", long_text, 4.0, kind="tag")])
    summary = metrics_summary(merged)
    text = summary["metrics"]["text"]["last"]
    assert text == "x" * 200 + "…"
    row = summary["metrics"]["row"]["last"]
    assert row.startswith('{"k": "yyy') and row.endswith("…") and len(row) == 201
    assert summary["metrics"]["small"]["last"] == "[1, 2]"
    assert summary["tags"]["note"] == "x" * 200 + "…"
    assert merged["metrics"]["text"] == [long_text]  # metrics.json keeps everything


def test_summary_keeps_at_most_100_names() -> None:
    lines = [_line(f"m{i:03}", i, float(i)) for i in range(150)]
    lines += [_line(f"t{i:03}", str(i), 200.0 + i, kind="tag") for i in range(120)]
    summary = metrics_summary(merge_metrics(lines))
    assert list(summary["metrics"]) == [f"m{i:03}" for i in range(100)]
    assert list(summary["tags"]) == [f"t{i:03}" for i in range(100)]


def test_summary_has_a_parent_only_when_something_was_logged_on_it() -> None:
    assert "parent" not in metrics_summary(merge_metrics([_line("n", 1, 1.0)]))
    tag_only = metrics_summary(merge_metrics([_line("p", "v", 1.0, run="parent", kind="tag")]))
    assert tag_only == {"metrics": {}, "tags": {},
                        "parent": {"metrics": {}, "tags": {"p": "v"}}}
    metric = metrics_summary(merge_metrics([_line("rows", 7, 1.0, run="parent")]))
    assert metric["parent"] == {"metrics": {"rows": {"last": 7, "count": 1}}, "tags": {}}
