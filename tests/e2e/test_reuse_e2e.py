"""allow_reuse: an identical job returns the earlier results without scoring again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e_app import App, lines


def _spec(app: App, counter: Path, **extra: Any) -> dict[str, Any]:
    return app.spec("init_counter.py", {"a.txt": "1", "b.txt": "2", "c.txt": "3"},
                    environment_variables={"INIT_COUNT_FILE": str(counter)}, **extra)


def _runs(counter: Path) -> int:
    return len(lines(counter.read_text())) if counter.exists() else 0


def test_identical_job_reuses_the_earlier_results(app: App, tmp_path: Path) -> None:
    counter = tmp_path / "inits.txt"
    first = app.wait(app.submit(_spec(app, counter)))
    assert first["state"] == "completed"
    inits = _runs(counter)
    second = app.wait(app.submit(_spec(app, counter)))
    assert second["state"] == "completed"
    assert second["reused_from"] == first["id"]
    assert "reused the results of job" in second["reason"]
    assert second["items"]["succeeded"] == 3
    assert _runs(counter) == inits  # nothing was scored again
    assert app.outputs(second)["parallel_run_step.txt"] == \
        app.outputs(first)["parallel_run_step.txt"]
    assert "status: completed" in app.outputs(second)["job_result.txt"]


def test_changed_input_or_allow_reuse_false_scores_again(app: App, tmp_path: Path) -> None:
    counter = tmp_path / "inits.txt"
    spec = _spec(app, counter)
    first = app.wait(app.submit(spec))
    not_reused = app.wait(app.submit({**spec, "allow_reuse": False}))
    assert not_reused["reused_from"] is None
    container = app.settings.jobs_container
    app.storage.blobs.upload(container, "inputs/b.txt", b"changed")
    changed = app.wait(app.submit(spec))
    assert changed["reused_from"] is None
    assert changed["id"] != first["id"]
    assert changed["state"] == "completed"


def test_changed_settings_score_again(app: App, tmp_path: Path) -> None:
    counter = tmp_path / "inits.txt"
    app.wait(app.submit(_spec(app, counter)))
    other = app.wait(app.submit(_spec(app, counter, arguments=["--flag"])))
    assert other["reused_from"] is None


def test_results_whose_outputs_were_deleted_are_scored_again(app: App, tmp_path: Path) -> None:
    counter = tmp_path / "inits.txt"
    first = app.wait(app.submit(_spec(app, counter)))
    container, prefix = first["output"]["location"].split("/", 1)
    assert app.storage.blobs.delete_prefix(container, f"{prefix}/parallel_run_step.txt") == 1
    second = app.wait(app.submit(_spec(app, counter)))
    assert second["state"] == "completed"
    assert second["reused_from"] is None
    assert len(lines(app.outputs(second)["parallel_run_step.txt"])) == 3
