"""Local folders read in place by the local runner: no upload, each file pinned to the
version listed, nothing outside the folders the job names, and never reused when changed."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_app import SCRIPTS, App, lines

from batchfx.core.errors import SpecError


@pytest.fixture
def local_app(app: App, tmp_path: Path) -> Iterator[App]:
    """The module's app, restarted with the test's folder as the one it may read, and one
    worker: which mini-batches it has staged then follows from the order alone."""
    app.stop()
    app.settings = dataclasses.replace(app.settings, local_roots=(str(tmp_path / "local"),))
    app.start(workers=1)
    yield app


def _folder(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _spec(app: App, script: str, n: int, **changes: Any) -> dict[str, Any]:
    local = app.tmp / "local"
    code = _folder(local / "code", {"score.py": (SCRIPTS / script).read_text()})
    inputs = _folder(local / "inputs", {f"item-{i:03d}.txt": f"line {i}" for i in range(n)})
    spec: dict[str, Any] = {
        "name": "local-job", "entry_script": "score.py", "source_directory": str(code),
        "inputs": str(inputs), "output": f"{app.settings.jobs_container}-out/results",
        "mini_batch_size": 1, "run_invocation_timeout": 30, "allow_reuse": False}
    spec.update(changes)
    return spec


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_local_folders_are_scored_in_place_without_uploading_them(local_app: App) -> None:
    view = local_app.wait(local_app.submit(_spec(local_app, "echo.py", 5)))
    assert view["state"] == "completed", view
    out = local_app.outputs(view)
    assert lines(out["parallel_run_step.txt"]) == [f"item-{i:03d}.txt line {i}"
                                                   for i in range(5)]
    stored = [r.name for r in local_app.storage.blobs.list_names(
        local_app.settings.jobs_container, "")]
    assert not [n for n in stored if not n.startswith("jobs/")], stored  # no inputs, no code


def test_a_file_changed_after_it_was_listed_fails_its_mini_batch_by_name(
        local_app: App, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    spec = _spec(local_app, "slow.py", 5, process_count_per_node=1,
                 environment_variables={"SLOW_MARKER_DIR": str(markers), "SLOW_SECONDS": "2"})
    job = local_app.submit(spec)
    _wait_for(lambda: any(markers.iterdir()))  # mini-batch 0 runs; 1 is staged at most
    changed = Path(spec["inputs"]) / "item-004.txt"
    changed.write_text("written while the job ran")
    view = local_app.wait(job)
    assert view["items"] == {"total": 5, "succeeded": 4, "failed": 1, "pending": 0}
    out = local_app.outputs(view)
    assert "item-004.txt ok" not in out["parallel_run_step.txt"]
    assert f"{changed} changed after the job listed it" in out["errors.txt"]
    assert "InputError" in out["errors.csv"]


def test_a_changed_local_input_is_never_reused(local_app: App) -> None:
    spec = _spec(local_app, "echo.py", 3, allow_reuse=True)
    first = local_app.wait(local_app.submit(spec))
    again = local_app.wait(local_app.submit(spec))
    assert first["state"] == again["state"] == "completed"
    assert again["reused_from"] == first["id"]
    path = Path(spec["inputs"]) / "item-001.txt"
    stat = os.stat(path)
    path.write_text("line X")  # same size; the modification time even set back
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = local_app.wait(local_app.submit(spec))
    assert changed["reused_from"] is None
    assert "item-001.txt line X" in local_app.outputs(changed)["parallel_run_step.txt"]


def test_a_model_changed_after_submit_fails_the_mini_batches_not_yet_started(
        local_app: App, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    model = _folder(tmp_path / "local" / "model", {"weights.txt": "v1"})
    spec = _spec(local_app, "slow.py", 3, model=str(model), process_count_per_node=1,
                 run_max_try=1,
                 environment_variables={"SLOW_MARKER_DIR": str(markers), "SLOW_SECONDS": "2"})
    job = local_app.submit(spec)
    _wait_for(lambda: any(markers.iterdir()))
    (model / "weights.txt").write_text("v2")
    assert local_app.runner is not None
    for pid in local_app.runner.worker_pids:  # its successor loads the model again
        os.kill(pid, signal.SIGKILL)
    view = local_app.wait(job)
    out = local_app.outputs(view)
    assert view["items"]["failed"] >= 1
    assert f"{model} changed after the job was submitted" in out["errors.txt"]


def test_local_paths_outside_the_app_local_roots_are_refused(local_app: App,
                                                              tmp_path: Path) -> None:
    outside = _folder(tmp_path / "elsewhere", {"a.txt": "1"})
    spec = _spec(local_app, "echo.py", 1, inputs=str(outside))
    with pytest.raises(SpecError, match="BATCHFX_LOCAL_ROOTS") as caught:
        local_app.submit(spec)
    assert "inputs.path" in str(caught.value)


def test_an_app_without_local_roots_refuses_local_paths(app: App, tmp_path: Path) -> None:
    spec = _spec(app, "echo.py", 1)
    with pytest.raises(SpecError, match="reads only its storage account") as caught:
        app.submit(spec)
    assert "source_directory" in str(caught.value) and "inputs.path" in str(caught.value)


def test_a_link_out_of_the_input_folder_is_refused_at_submit_naming_it(
        local_app: App, tmp_path: Path) -> None:
    spec = _spec(local_app, "echo.py", 2)
    secret = tmp_path / "local" / "secret.txt"
    secret.write_text("do not read")
    (Path(spec["inputs"]) / "leak.txt").symlink_to(secret)
    with pytest.raises(SpecError, match=r"leak\.txt is a symbolic link to .*secret\.txt"):
        local_app.submit(spec)
