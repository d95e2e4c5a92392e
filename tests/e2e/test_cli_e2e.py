"""The ``batchfx`` command as a user runs it, against the module's Azurite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_app import SCRIPTS, lines

BATCHFX = [sys.executable, "-m", "batchfx"]


def _env(connection_string: str, unique_name: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "AzureWebJobsStorage": connection_string,
            "BATCHFX_JOBS_CONTAINER": unique_name, "BATCHFX_QUEUE_NAME": unique_name,
            "BATCHFX_JOBS_TABLE": f"{unique_name}jobs",
            "BATCHFX_MINIBATCHES_TABLE": f"{unique_name}mb",
            "BATCHFX_WORK_DIR": str(tmp_path / "work"),
            "BATCHFX_STATE_DIR": str(tmp_path / "user-state")}


def _job_folder(tmp_path: Path, script: str, files: dict[str, str], **spec: object) -> Path:
    code = tmp_path / "job" / "code"
    code.mkdir(parents=True)
    (code / "score.py").write_bytes((SCRIPTS / script).read_bytes())
    inputs = tmp_path / "job" / "inputs"
    inputs.mkdir()
    for name, text in files.items():
        (inputs / name).write_text(text)
    body = {"name": "cli-job", "source_directory": "code", "entry_script": "score.py",
            "inputs": "inputs", "output": "results/cli", "mini_batch_size": 2, **spec}
    path = tmp_path / "job" / "job.yml"
    path.write_text(json.dumps(body))  # JSON is YAML
    return path


def test_run_scores_local_folders_and_downloads_the_outputs(
        connection_string: str, unique_name: str, tmp_path: Path) -> None:
    spec = _job_folder(tmp_path, "echo.py", {f"f{i}.txt": f"line {i}" for i in range(5)})
    out = tmp_path / "out"
    done = subprocess.run([*BATCHFX, "run", str(spec), "--output", str(out), "--quiet"],
                          env=_env(connection_string, unique_name, tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out / "parallel_run_step.txt")
    assert lines((out / "parallel_run_step.txt").read_text()) == [
        f"f{i}.txt line {i}" for i in range(5)]
    assert (out / "job_result.txt").is_file()
    assert (out / "processed_mini-batches.csv").is_file()
    assert "completed: 5 of 5 items succeeded" in " ".join(done.stderr.split())


def test_run_exits_non_zero_and_says_why_when_the_job_fails(
        connection_string: str, unique_name: str, tmp_path: Path) -> None:
    spec = _job_folder(tmp_path, "init_raises.py", {"a.txt": "1"}, run_max_try=1)
    done = subprocess.run([*BATCHFX, "run", str(spec), "--output", str(tmp_path / "o"),
                           "--quiet"], env=_env(connection_string, unique_name, tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 1
    assert "failed" in done.stderr
    assert "model file missing" in done.stderr


def test_run_refuses_a_bad_spec_naming_the_field(tmp_path: Path) -> None:
    spec = _job_folder(tmp_path, "echo.py", {"a.txt": "1"}, mini_batch_size="ten")
    done = subprocess.run([*BATCHFX, "run", str(spec), "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "mini_batch_size" in done.stderr and "'ten'" in done.stderr


def test_run_names_the_local_folder_it_looked_for(tmp_path: Path) -> None:
    spec = _job_folder(tmp_path, "echo.py", {"a.txt": "1"}, inputs="inptus")
    env = {k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"}
    done = subprocess.run([*BATCHFX, "run", str(spec), "--output", str(tmp_path / "o")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert f"inputs.path: 'inptus' does not exist (looked for {spec.parent / 'inptus'}" in message
    assert "upload the data" not in message


def test_run_refuses_an_output_folder_holding_other_files_before_it_starts(
        tmp_path: Path) -> None:
    spec = _job_folder(tmp_path, "echo.py", {"a.txt": "1"})
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    env = {k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"}
    done = subprocess.run([*BATCHFX, "run", str(spec), "--output", str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert "holds files that are not an earlier batchfx download (keep.txt)" in message
    assert "started Azurite" not in done.stdout
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid (Linux /proc); None once it has ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def _children(pid: int) -> list[int]:
    """The live (not zombie) child processes of ``pid``."""
    return [int(d.name) for d in Path("/proc").glob("[0-9]*")
            if (stat := _stat(int(d.name))) is not None and stat[1] == pid and stat[0] != "Z"]


def _gone(pids: list[int], timeout: float) -> list[int]:
    """The ``pids`` still alive (not ended, not a zombie) after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if (stat := _stat(pid)) is not None and stat[0] != "Z"]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _serve(workdir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``batchfx serve`` with one worker, started and ready."""
    workdir.mkdir()
    process = subprocess.Popen([*BATCHFX, "serve", "--port", "0", "--workers", "1"],
                               cwd=workdir, env=env, stderr=subprocess.PIPE, text=True)
    state = workdir / ".batchfx" / "serve.json"
    deadline = time.monotonic() + 60
    while not state.is_file():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "batchfx serve did not start"
        time.sleep(0.2)
    return process


@pytest.fixture
def served(connection_string: str, unique_name: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = _env(connection_string, unique_name, tmp_path)
    workdir = tmp_path / "serve"
    process = _serve(workdir, env)
    yield workdir, env
    workers = _children(process.pid)
    assert workers, "serve started no worker processes"
    process.terminate()  # SIGTERM, as kill or a service manager sends: stop as Ctrl-C does
    assert process.wait(timeout=30) == 0
    assert _gone(workers, 5) == []  # its workers stopped with it
    assert not (workdir / ".batchfx" / "serve.json").exists()
    assert not (tmp_path / "user-state" / "serve.json").exists()


def test_a_killed_serve_leaves_no_worker_taking_messages(connection_string: str,
                                                         unique_name: str,
                                                         tmp_path: Path) -> None:
    process = _serve(tmp_path / "serve", _env(connection_string, unique_name, tmp_path))
    workers = _children(process.pid)
    assert workers, "serve started no worker processes"
    process.send_signal(signal.SIGKILL)  # no chance to stop them: they notice it is gone
    process.wait(timeout=30)
    assert _gone(workers, 15) == []


def test_serve_submit_status_list_download(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    workdir, env = served
    spec = _job_folder(tmp_path, "echo.py", {"a.txt": "1", "b.txt": "2", "c.txt": "3"})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*BATCHFX, *args], cwd=workdir, env=env, capture_output=True,
                              text=True, timeout=120)

    submitted = cli("submit", str(spec), "--wait")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().splitlines()[0]
    status = json.loads(cli("status", job_id).stdout)
    assert status["state"] == "completed"
    assert status["items"]["succeeded"] == 3
    listed = [line for line in cli("list").stdout.splitlines() if line.startswith(job_id)]
    assert len(listed) == 1 and listed[0].endswith("\t3/3 items, 0 failed")
    downloaded = cli("download", job_id, str(tmp_path / "dl"))
    assert downloaded.returncode == 0, downloaded.stderr
    assert lines((tmp_path / "dl" / "parallel_run_step.txt").read_text()) == [
        "a.txt 1", "b.txt 2", "c.txt 3"]
    cancel = cli("cancel", job_id)
    assert cancel.returncode == 2
    assert "already ended as completed" in cancel.stderr


def test_commands_find_the_serve_from_any_folder_and_upload_there(  # type: ignore[no-untyped-def]
        served, tmp_path: Path) -> None:
    _, env = served
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "model").mkdir(parents=True)
    (elsewhere / "model" / "weights.txt").write_text("w")
    (elsewhere / "day1").mkdir()
    for i in range(3):
        (elsewhere / "day1" / f"{i}.txt").write_text(str(i))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*BATCHFX, *args], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=120)

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    created = cli("model", "create", "--name", "clf", "--path", "./model")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "azureml:clf:1"
    again = cli("model", "create", "--name", "clf", "--path", "./model")
    assert again.stdout.strip() == "azureml:clf:1" and "unchanged" in again.stderr
    assert cli("model", "list").stdout.startswith("clf\t1\t")
    shown = json.loads(cli("model", "show", "clf").stdout)
    assert shown["path"].endswith("/files/model")  # the folder keeps its own name
    uploaded = cli("upload", "./day1", f"{env['BATCHFX_JOBS_CONTAINER']}/data/day1")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "uploaded 3 files" in uploaded.stderr
    resumed = cli("upload", "./day1", f"{env['BATCHFX_JOBS_CONTAINER']}/data/day1")
    assert "uploaded 0 files" in resumed.stderr and "(3 already there)" in resumed.stderr
    bad = cli("upload", "./day1", "Bad_Container/x")
    assert bad.returncode == 2 and "destination" in bad.stderr


def test_without_a_serve_commands_say_how_to_find_one(tmp_path: Path) -> None:
    env = {**os.environ, "BATCHFX_STATE_DIR": str(tmp_path / "none")}
    env.pop("BATCHFX_URL", None)
    done = subprocess.run([*BATCHFX, "model", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no app to talk to: start `batchfx serve`" in done.stderr


def test_run_reads_several_local_inputs_in_place(connection_string: str, unique_name: str,
                                                 tmp_path: Path) -> None:
    spec = _job_folder(tmp_path, "echo.py", {"a.txt": "1"}, inputs=["inputs", "more"])
    (tmp_path / "job" / "more").mkdir()
    (tmp_path / "job" / "more" / "b.txt").write_text("2")
    out = tmp_path / "out"
    done = subprocess.run([*BATCHFX, "run", str(spec), "--output", str(out), "--quiet"],
                          env=_env(connection_string, unique_name, tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert lines((out / "parallel_run_step.txt").read_text()) == ["a.txt 1", "b.txt 2"]


def test_run_scores_a_v1_azureml_core_script_unchanged(connection_string: str,
                                                        unique_name: str,
                                                        tmp_path: Path) -> None:
    spec = _job_folder(tmp_path, "v1_azureml_core.py", {"a.txt": "1", "b.txt": "2"},
                       model={"name": "digits-clf", "path": "weights/model"},
                       side_inputs={"labels": "labels"})
    (tmp_path / "job" / "weights" / "model").mkdir(parents=True)
    (tmp_path / "job" / "weights" / "model" / "weights.txt").write_text("w5")
    (tmp_path / "job" / "labels").mkdir()
    (tmp_path / "job" / "labels" / "names.txt").write_text("zero")
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"cog-key": "s3cret"}')
    env = {**_env(connection_string, unique_name, tmp_path),
           "BATCHFX_SECRETS_FILE": str(secrets)}
    out = tmp_path / "out"
    done = subprocess.run([*BATCHFX, "run", str(spec), "--output", str(out), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert lines((out / "parallel_run_step.txt").read_text()) == [
        f"{n}.txt weights=w5 key_ok=True model=model datasets=['labels']" for n in "ab"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tags"] == {"model": "digits-clf"}
    assert "s3cret" not in (out / "metrics.json").read_text()


def test_run_of_a_cluster_sized_spec_starts_what_this_machine_holds(
        connection_string: str, unique_name: str, tmp_path: Path) -> None:
    spec = _job_folder(tmp_path, "echo.py", {"a.txt": "1"}, instance_count=6,
                       max_concurrency_per_instance=4)
    fits = max(1, (os.cpu_count() or 1) // 4)
    done = subprocess.run([*BATCHFX, "run", str(spec), "--output", str(tmp_path / "out"),
                           "--quiet"], env=_env(connection_string, unique_name, tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    if fits < 6:
        assert f"node_count 6: {fits} instance(s) on this machine" in said
    assert f"({min(6, fits)} instance(s) of 4 script processes)" in said


def test_a_killed_serve_leaves_no_azurite_behind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobsStorage")}
    env.update(BATCHFX_WORK_DIR=str(tmp_path / "work"), BATCHFX_STATE_DIR=str(tmp_path / "st"))
    process = _serve(tmp_path / "serve", env)  # its own Azurite, in .batchfx/azurite
    azurite = [pid for pid in _children(process.pid)
               if b"azurite" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert azurite, "serve started no Azurite of its own"
    process.send_signal(signal.SIGKILL)  # no chance to stop it: it notices its parent is gone
    process.wait(timeout=30)
    assert _gone(azurite, 30) == []
