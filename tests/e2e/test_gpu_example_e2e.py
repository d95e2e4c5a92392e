"""The GPU example end to end with `batchfx run`, on this machine's CPU: the ONNX model
scores every input once, in order, as ONNX Runtime computes it; the worker log says which
device ran it; and `--device cuda` on a machine with no CUDA fails the job at once with a
reason, instead of scoring on the CPU. (On a GPU machine, examples/gpu/check_gpu.py runs
the CUDA path.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
import yaml
from example_modules import load_example

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gpu"
COUNT = 120

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gpu-example") / "generated"
    load_example("gpu").prepare(root, COUNT)
    return root


def _run(generated: Path, connection_string: str, name: str, tmp_path: Path,
         **changes: Any) -> subprocess.CompletedProcess[str]:
    spec = yaml.safe_load((EXAMPLE / "job.yml").read_text())
    spec.update(source_directory=str(EXAMPLE / "code"), model=str(generated / "model"),
                inputs=str(generated / "inputs"), **changes)
    job = tmp_path / "job.yml"
    job.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "AzureWebJobsStorage": connection_string,
           "BATCHFX_JOBS_CONTAINER": name, "BATCHFX_QUEUE_NAME": name,
           "BATCHFX_WORK_DIR": str(tmp_path / "work")}
    return subprocess.run([sys.executable, "-m", "batchfx", "run", str(job), "--output",
                           str(tmp_path / "out"), "--quiet"], env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_example_scores_every_image_once_in_order_on_the_cpu(
        generated: Path, connection_string: str, unique_name: str, tmp_path: Path) -> None:
    done = _run(generated, connection_string, unique_name, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "out"
    assert (out / "parallel_run_step.txt").read_text() == \
        (generated / "expected.txt").read_text()
    logs = "".join(p.read_text() for p in (out / "logs").iterdir())
    assert "on CPUExecutionProvider" in logs  # the device it ran on, in the worker log
    assert "CUDAExecutionProvider" not in ort.get_available_providers()  # as said: CPU here


def test_asking_for_cuda_where_there_is_none_fails_the_job_at_once(
        generated: Path, connection_string: str, unique_name: str, tmp_path: Path) -> None:
    done = _run(generated, connection_string, unique_name, tmp_path,
                arguments=["--device", "cuda"])
    assert done.returncode == 1
    result = (tmp_path / "out" / "job_result.txt").read_text()
    assert "status: failed" in result, result
    assert "--device cuda: ONNX Runtime has no CUDA provider here" in result, result
    assert not (tmp_path / "out" / "parallel_run_step.txt").exists()
