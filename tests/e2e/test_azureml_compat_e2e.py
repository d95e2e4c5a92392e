"""What an Azure ML scoring script relies on, through the whole app."""

from __future__ import annotations

from pathlib import Path

from e2e_app import SCRIPTS, App, lines


def test_script_sees_argv_model_dir_env_and_output_path(app: App) -> None:
    container = app.settings.jobs_container
    app.storage.blobs.upload(container, "code/echo.py", (SCRIPTS / "echo.py").read_bytes())
    app.storage.blobs.upload(container, "model/weights.bin", b"\x00\x01")
    spec = app.spec("azureml_env.py", {"a.txt": "1", "b.txt": "2"},
                    model=f"{container}/model", arguments=["--threshold", "0.9"],
                    environment_variables={"GREETING": "hello"})
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed"
    out = app.outputs(view)
    rows = lines(out["parallel_run_step.txt"])
    assert len(rows) == 2
    assert all("threshold=0.9" in r and "greeting=hello" in r and "argv0=score.py" in r
               for r in rows)
    model_dir = rows[0].split("model=")[1].split()[0]
    # Azure ML's layout: azureml-models/<name>/<version>, holding the folder by its own name
    assert model_dir.endswith("/azureml-models/model/1")
    assert "init_done.txt" in out  # written to AZUREML_BI_OUTPUT_PATH, uploaded


def test_init_runs_once_per_worker_process_not_per_mini_batch(app: App, tmp_path: Path) -> None:
    counter = tmp_path / "inits.txt"
    spec = app.spec("init_counter.py", {f"{i}.txt": str(i) for i in range(8)},
                    mini_batch_size=1, environment_variables={"INIT_COUNT_FILE": str(counter)})
    view = app.wait(app.submit(spec))
    assert view["state"] == "completed"
    assert view["mini_batches"]["succeeded"] == 8
    pids = lines(counter.read_text())
    assert 1 <= len(pids) <= 2  # two worker processes at most, never one per mini-batch
    assert len(set(pids)) == len(pids)


def test_run_with_context_gets_the_mini_batch_index(app: App) -> None:
    spec = app.spec("context_run.py", {f"{i}.txt": "x" for i in range(4)}, mini_batch_size=2)
    view = app.wait(app.submit(spec))
    rows = lines(app.outputs(view)["parallel_run_step.txt"])
    assert [r.split()[0] for r in rows] == ["0", "0", "1", "1"]
