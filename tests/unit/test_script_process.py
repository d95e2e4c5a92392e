"""ScriptProcess against real child processes running the fixture scripts in tests/scripts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchfx.scoring import MiniBatchContext, ScriptConfig, ScriptProcess, TryOutcome, TryPhase

pytestmark = pytest.mark.timeout(60)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def worker() -> Iterator[ScriptProcess]:
    with ScriptProcess(init_timeout=30, shutdown_timeout=2) as w:
        yield w


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "inputs"
    folder.mkdir()
    contents = {
        "a.txt": "alpha\nmore",
        "b.txt": "beta",
        "bad.txt": "this one is bad",
        "flaky.txt": "flaky",
        "hang.txt": "hang",
        "crash.txt": "crash",
    }
    for name, text in contents.items():
        (folder / name).write_text(text)
    return {name: str(folder / name) for name in contents}


def config(tmp_path: Path, entry_script: str, **changes: object) -> ScriptConfig:
    values: dict[str, object] = {
        "code_dir": str(SCRIPTS),
        "entry_script": entry_script,
        "model_dir": None,
        "output_dir": str(tmp_path / "output"),
        "log_path": str(tmp_path / "worker.log"),
        **changes,
    }
    return ScriptConfig(**values)  # type: ignore[arg-type]


def context(index: int = 0) -> MiniBatchContext:
    return MiniBatchContext(
        job_id="job-1", mini_batch_id=f"mb-{index}", minibatch_index=index, try_number=1
    )


def run(
    worker: ScriptProcess, cfg: ScriptConfig, paths: list[str], timeout: float = 20
) -> TryOutcome:
    return worker.run_mini_batch(cfg, paths, context(), timeout)


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped


def test_echo_returns_one_row_per_item(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    outcome = run(worker, config(tmp_path, "echo.py"), [files["a.txt"], files["b.txt"]])
    assert outcome.ok, outcome.error
    assert (outcome.items, outcome.succeeded, outcome.failed, outcome.rows) == (2, 2, 0, 2)
    assert outcome.part == b"a.txt alpha\nb.txt beta\n"
    assert outcome.header is None
    assert outcome.worker.endswith(f":{worker.child_pid}")


def test_script_prints_go_to_the_worker_log(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    outcome = run(worker, config(tmp_path, "echo.py"), [files["a.txt"]])
    assert outcome.part == b"a.txt alpha\n"
    assert "echo: scoring 1 files" in (tmp_path / "worker.log").read_text()


def test_init_is_called_once_across_mini_batches(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    count_file = tmp_path / "inits.txt"
    cfg = config(
        tmp_path, "init_counter.py", environment_variables=(("INIT_COUNT_FILE", str(count_file)),)
    )
    pids = set()
    for name in ("a.txt", "b.txt", "bad.txt"):
        assert run(worker, cfg, [files[name]]).part == f"{name}\n".encode()
        pids.add(worker.child_pid)
    assert len(pids) == 1
    assert count_file.read_text().splitlines() == [f"init {pids.pop()}"]


def test_changed_config_shuts_old_child_down_and_inits_again(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    count_file = tmp_path / "inits.txt"
    env = (("INIT_COUNT_FILE", str(count_file)),)
    first = config(tmp_path, "init_counter.py", environment_variables=env)
    second = config(tmp_path, "init_counter.py", environment_variables=env, arguments=("--x",))
    run(worker, first, [files["a.txt"]])
    first_pid = worker.child_pid
    assert run(worker, second, [files["a.txt"]]).ok
    second_pid = worker.child_pid
    assert first_pid is not None and second_pid not in (None, first_pid)
    assert count_file.read_text().splitlines() == [
        f"init {first_pid}",
        f"shutdown {first_pid}",
        f"init {second_pid}",
    ]
    assert not pid_alive(first_pid)


def test_close_calls_shutdown_and_is_idempotent(files: dict[str, str], tmp_path: Path) -> None:
    count_file = tmp_path / "inits.txt"
    env = (("INIT_COUNT_FILE", str(count_file)),)
    worker = ScriptProcess(shutdown_timeout=2)
    run(worker, config(tmp_path, "init_counter.py", environment_variables=env), [files["a.txt"]])
    pid = worker.child_pid
    assert pid is not None
    worker.close()
    worker.close()
    assert worker.child_pid is None and not pid_alive(pid)
    assert count_file.read_text().splitlines()[-1] == f"shutdown {pid}"


def test_items_missing_from_the_result_count_as_failed(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    paths = [files["a.txt"], files["bad.txt"], files["b.txt"]]
    outcome = run(worker, config(tmp_path, "fail_some.py"), paths)
    assert outcome.ok
    assert (outcome.succeeded, outcome.failed, outcome.rows) == (2, 1, 2)
    assert outcome.part == b"a.txt ok\nb.txt ok\n"


def test_more_rows_than_items_are_all_written(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    outcome = run(worker, config(tmp_path, "returns_more.py"), [files["a.txt"], files["b.txt"]])
    assert (outcome.succeeded, outcome.failed, outcome.rows) == (2, 0, 4)
    assert outcome.part == b"a.txt a\na.txt b\nb.txt a\nb.txt b\n"


@pytest.mark.parametrize(
    ("output_format", "header", "part", "header_bytes"),
    [
        ("text", False, b"a.txt 10\nb.txt 4\n", None),
        ("text", True, b"a.txt 10\nb.txt 4\n", b"file length\n"),
        ("csv", False, b"a.txt,10\nb.txt,4\n", b"file,length\n"),
    ],
)
def test_dataframe_result_is_formatted(
    worker: ScriptProcess,
    files: dict[str, str],
    tmp_path: Path,
    output_format: str,
    header: bool,
    part: bytes,
    header_bytes: bytes | None,
) -> None:
    cfg = config(
        tmp_path, "returns_dataframe.py", output_format=output_format, append_row_header=header
    )
    outcome = run(worker, cfg, [files["a.txt"], files["b.txt"]])
    assert outcome.ok, outcome.error
    assert (outcome.part, outcome.header, outcome.succeeded) == (part, header_bytes, 2)


@pytest.mark.parametrize(
    ("entry_script", "type_name"),
    [("returns_none.py", "NoneType"), ("returns_generator.py", "generator")],
)
def test_wrong_return_type_is_a_return_error_and_keeps_the_child(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path, entry_script: str, type_name: str
) -> None:
    cfg = config(tmp_path, entry_script)
    outcome = run(worker, cfg, [files["a.txt"], files["b.txt"]])
    assert outcome.error is not None
    assert outcome.error.phase is TryPhase.RETURN
    assert f"run() returned {type_name}" in outcome.error.message
    assert (outcome.succeeded, outcome.failed, outcome.part) == (0, 2, b"")
    pid = worker.child_pid
    run(worker, cfg, [files["a.txt"]])
    assert worker.child_pid == pid


def test_script_without_run_is_a_load_error(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    outcome = run(worker, config(tmp_path, "no_run.py"), [files["a.txt"]])
    assert outcome.error is not None
    assert outcome.error.phase is TryPhase.LOAD
    assert outcome.error.message.endswith("no_run.py has no run() function; define run(mini_batch)")
    assert (outcome.failed, outcome.succeeded) == (1, 0)
    assert worker.child_pid is None


def test_syntax_error_is_a_load_error_with_traceback(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    outcome = run(worker, config(tmp_path, "syntax_error.py"), [files["a.txt"]])
    assert outcome.error is not None
    assert (outcome.error.phase, outcome.error.type) == (TryPhase.LOAD, "SyntaxError")
    assert "syntax_error.py" in outcome.error.traceback
    assert "def run(mini_batch)" in outcome.error.traceback
    assert "importlib" not in outcome.error.traceback


def test_missing_entry_script_is_a_load_error(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    outcome = run(worker, config(tmp_path, "missing.py"), [files["a.txt"]])
    assert outcome.error is not None
    assert (outcome.error.phase, outcome.error.type) == (TryPhase.LOAD, "FileNotFoundError")
    assert "entry_script 'missing.py' not found" in outcome.error.message


def test_init_error_carries_the_script_traceback_and_is_retried(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    cfg = config(tmp_path, "init_raises.py")
    outcome = run(worker, cfg, [files["a.txt"], files["b.txt"]])
    error = outcome.error
    assert error is not None
    assert (error.phase, error.type, error.message) == (
        TryPhase.INIT,
        "ValueError",
        "model file missing",
    )
    assert "init_raises.py" in error.traceback and "_load_model" in error.traceback
    assert "ValueError: model file missing" in error.traceback
    assert "batchfx" not in error.traceback
    assert (outcome.succeeded, outcome.failed, outcome.part) == (0, 2, b"")
    assert worker.child_pid is None
    again = run(worker, cfg, [files["a.txt"]])
    assert again.error is not None and again.error.phase is TryPhase.INIT


def test_init_timeout_kills_the_child(files: dict[str, str], tmp_path: Path) -> None:
    with ScriptProcess(init_timeout=1) as worker:
        outcome = run(worker, config(tmp_path, "init_hangs.py"), [files["a.txt"]])
        assert outcome.error is not None
        assert outcome.error.phase is TryPhase.TIMEOUT
        assert "init_timeout=1s" in outcome.error.message
        assert worker.child_pid is None


def test_run_exception_is_a_run_error_and_the_retry_reuses_the_child(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    cfg = config(tmp_path, "raises_once.py")
    outcome = run(worker, cfg, [files["a.txt"], files["flaky.txt"]])
    error = outcome.error
    assert error is not None
    assert (error.phase, error.type) == (TryPhase.RUN, "RuntimeError")
    assert "flaky input failed on its first try" in error.message
    assert "raises_once.py" in error.traceback and "in _check" in error.traceback
    pid = worker.child_pid
    retry = run(worker, cfg, [files["a.txt"], files["flaky.txt"]])
    assert retry.ok and retry.part == b"a.txt\nflaky.txt\n"
    assert worker.child_pid == pid


def test_timeout_kills_a_hung_run_and_the_next_call_starts_fresh(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    cfg = config(tmp_path, "hangs.py")
    assert run(worker, cfg, [files["a.txt"]]).ok
    hung_pid = worker.child_pid
    assert hung_pid is not None
    started = time.monotonic()
    outcome = run(worker, cfg, [files["hang.txt"]], timeout=1)
    assert time.monotonic() - started < 15
    assert outcome.error is not None
    assert (outcome.error.phase, outcome.error.type) == (TryPhase.TIMEOUT, "TimeoutError")
    assert outcome.error.message == "run() did not return within run_invocation_timeout=1s"
    assert outcome.failed == 1
    assert not pid_alive(hung_pid)
    after = run(worker, cfg, [files["b.txt"]])
    assert after.ok and after.part == b"b.txt\n"
    assert worker.child_pid not in (None, hung_pid)


def test_crash_reports_the_exit_code_and_the_next_call_starts_fresh(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    cfg = config(tmp_path, "crash.py")
    outcome = run(worker, cfg, [files["a.txt"], files["crash.txt"]])
    error = outcome.error
    assert error is not None
    assert (error.phase, error.type) == (TryPhase.CRASH, "WorkerCrashed")
    assert "exited with code 3" in error.message
    assert (outcome.failed, outcome.succeeded) == (2, 0)
    assert worker.child_pid is None
    after = run(worker, cfg, [files["a.txt"]])
    assert after.ok and after.part == b"a.txt\n"


def test_system_exit_is_a_run_error_with_its_code(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    outcome = run(worker, config(tmp_path, "system_exit.py"), [files["a.txt"]])
    error = outcome.error
    assert error is not None
    assert (error.phase, error.type) == (TryPhase.RUN, "SystemExit")
    assert error.message == "run() called sys.exit(42)"
    assert "system_exit.py" in error.traceback and "in _give_up" in error.traceback
    assert "SystemExit: 42" in error.traceback
    assert worker.child_pid is not None


def test_script_sees_argv_environment_model_and_output_folders(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    cfg = config(
        tmp_path,
        "azureml_env.py",
        model_dir=str(model),
        arguments=("--threshold", "0.8", "--unknown", "x"),
        environment_variables=(("GREETING", "hello"),),
    )
    outcome = run(worker, cfg, [files["a.txt"]])
    assert outcome.ok, outcome.error
    assert outcome.part.decode() == (
        f"a.txt threshold=0.8 model={model} greeting=hello argv0=azureml_env.py cwd={SCRIPTS}\n"
    )
    assert (tmp_path / "output" / "init_done.txt").is_file()


def test_run_with_context_receives_the_mini_batch_context(
    worker: ScriptProcess, files: dict[str, str], tmp_path: Path
) -> None:
    outcome = worker.run_mini_batch(
        config(tmp_path, "context_run.py"), [files["a.txt"]], context(index=7), timeout=20
    )
    assert outcome.part == f"7 {files['a.txt']}\n".encode()


def test_child_dies_when_the_parent_is_killed(files: dict[str, str], tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    cfg = config(tmp_path, "hangs.py", environment_variables=(("HANGS_PID_FILE", str(pid_file)),))
    parent_code = textwrap.dedent(
        f"""
        from batchfx.scoring import MiniBatchContext, RunInfo, ScriptConfig, ScriptProcess
        ScriptProcess().run_mini_batch(
            {cfg!r}, [{files["hang.txt"]!r}], MiniBatchContext("job-1", "mb-0", 0, 1), 600
        )
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists():
            assert parent.poll() is None, "the parent process exited early"
            assert time.monotonic() < deadline, "the hanging run() never started"
            time.sleep(0.05)
        child_pid = int(pid_file.read_text())
        assert pid_alive(child_pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while pid_alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(child_pid), f"child {child_pid} outlived its parent"
    assert os.getpid() != child_pid

