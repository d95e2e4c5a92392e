"""Run the GPU example on this machine's GPU and its CPU, and compare: the CUDA path end
to end through `batchfx run` (its own Azurite, local folders).

    pip install "onnxruntime-gpu[cuda,cudnn]"     # in batchfx's .venv, instead of onnxruntime
    .venv/bin/python examples/gpu/check_gpu.py [--count 20000] [--mini-batch-size 500]

Prepares the inputs, runs the job with `--device cpu` and then `--device cuda` (which
refuses to start without CUDA), checks both outputs against expected.txt (ONNX Runtime on
the CPU; a GPU's float arithmetic may flip a near tie, so up to 0.1 % of the digits may
differ, and no more) and prints each run's items per second from its job_result.txt.
Exit status 0 when both runs completed and agree, 1 otherwise, 2 when there is no CUDA.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from prepare import prepare  # noqa: E402  (this folder's prepare.py)

BATCHFX = [sys.executable, "-m", "batchfx"]


def run_job(root: Path, device: str, mini_batch_size: int) -> tuple[float, dict[str, str]]:
    """`batchfx run` the example on ``device``; returns its wall time and job_result.txt."""
    spec = yaml.safe_load((HERE / "job.yml").read_text())
    spec.update(source_directory=str(HERE / "code"), model=str(root / "model"),
                inputs=str(root / "inputs"), arguments=["--device", device],
                mini_batch_size=mini_batch_size, allow_reuse=False)
    job = root / f"job-{device}.yml"
    job.write_text(yaml.safe_dump(spec))
    started = time.monotonic()
    done = subprocess.run([*BATCHFX, "run", str(job), "--output", str(root / device),
                           "--quiet"], capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        print(done.stdout + done.stderr, file=sys.stderr)
    result = dict(line.split(": ", 1) for line in
                  (root / device / "job_result.txt").read_text().splitlines() if ": " in line)
    return wall, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--mini-batch-size", type=int, default=500)
    args = parser.parse_args()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"no CUDA provider in this ONNX Runtime ({ort.get_available_providers()}): "
              'install onnxruntime-gpu[cuda,cudnn] on a machine with an NVIDIA GPU',
              file=sys.stderr)
        return 2
    ok = True
    with tempfile.TemporaryDirectory(prefix="batchfx-gpu-") as temp:
        root = Path(temp)
        expected = prepare(root, args.count)
        for device in ("cpu", "cuda"):
            wall, result = run_job(root, device, args.mini_batch_size)
            rows = (root / device / "parallel_run_step.txt").read_text().splitlines() \
                if (root / device / "parallel_run_step.txt").exists() else []
            names = [r.split()[0] for r in rows] == [e.split()[0] for e in expected]
            differ = sum(a != b for a, b in zip(rows, expected, strict=False))
            agree = names and differ <= len(expected) // 1000
            ok = ok and result.get("status") == "completed" and agree
            print(f"{device:5s} status {result.get('status')}, {len(rows)} rows "
                  f"({differ} digits differ from the CPU reference), wall {wall:.1f} s, "
                  f"items/s {result.get('items_per_second', '?')}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
