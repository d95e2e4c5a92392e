"""A scoring script's own subprocesses stop with its process."""

from __future__ import annotations

import time
from pathlib import Path

from batchfx.scoring import MiniBatchContext, ScriptConfig, ScriptProcess

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped


def test_the_scripts_own_subprocesses_stop_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    (tmp_path / "a.txt").write_text("x")
    cfg = ScriptConfig(code_dir=str(SCRIPTS), entry_script="starts_a_helper.py",
                       model_dir=None, output_dir=str(tmp_path / "output"),
                       environment_variables=(("HELPER_PID_FILE", str(pid_file)),))
    with ScriptProcess(init_timeout=30, shutdown_timeout=2) as worker:
        outcome = worker.run_mini_batch(cfg, [str(tmp_path / "a.txt")],
                                        MiniBatchContext("job-1", "mb-0", 0, 1), 20)
        assert outcome.ok, outcome.error
        helper = int(pid_file.read_text())
        assert _alive(helper)
    deadline = time.monotonic() + 30  # generous: SIGKILL is delivered at once
    while _alive(helper):
        assert time.monotonic() < deadline, "the script's helper outlived the script"
        time.sleep(0.05)
