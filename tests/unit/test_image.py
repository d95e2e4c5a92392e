"""`batchfx image`: the GPU scorer image's requirements from a spec's environment, and a
build context with everything infra/gpu/Dockerfile copies."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchfx.cli.main import main
from batchfx.core.environments import Environment
from batchfx.core.image import ImageError, image_python, scorer_requirements

ROOT = Path(__file__).resolve().parents[2]
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"
CONDA = f"""name: scorer
dependencies:
  - python={RUNNING}
  - pip
  - pip:
    - onnxruntime-gpu[cuda,cudnn]>=1.20
    - tabulate==0.9.0
"""


def _spec(folder: Path, environment: str | None = "  conda_file: conda.yml\n") -> Path:
    (folder / "conda.yml").write_text(CONDA)
    spec = folder / "job.yml"
    spec.write_text("name: scorer\nentry_script: score.py\nsource_directory: code\n"
                    "inputs: in\noutput: results/x\n"
                    + (f"environment:\n{environment}" if environment else ""))
    return spec


def test_the_base_images_python_is_read_from_the_dockerfile() -> None:
    assert image_python("FROM mcr.microsoft.com/azure-functions/python:4-python3.11\n") \
        == "3.11"
    assert image_python("FROM ubuntu:24.04\n") is None
    # The repository's image runs the Python batchfx is tested with.
    assert image_python((ROOT / "infra/gpu/Dockerfile").read_text()) == RUNNING


def test_an_environment_for_another_python_is_refused() -> None:
    with pytest.raises(ImageError, match=r"asks for Python 3\.9 — the GPU image runs Python "
                                         r"3\.11 .*python=3\.11"):
        scorer_requirements(Environment(("numpy",), "3.9"), "3.11")
    assert "numpy\n" in scorer_requirements(Environment(("numpy",), "3.11"), "3.11")


def test_it_prints_the_requirements_of_the_conda_files_pip_section(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["image", str(_spec(tmp_path))])
    assert done.exit_code == 0, done.output
    lines = [line for line in done.output.splitlines() if not line.startswith("#")]
    assert lines == ["onnxruntime-gpu[cuda,cudnn]>=1.20", "tabulate==0.9.0"]


def test_an_azure_ml_deployment_yaml_gives_the_same(tmp_path: Path) -> None:
    (tmp_path / "conda.yml").write_text(CONDA)
    deployment = tmp_path / "deployment.yml"
    deployment.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/batchDeployment.schema.json\n"
        "name: onnx\nendpoint_name: digits\ncode_configuration:\n  code: code\n"
        "  scoring_script: score.py\nenvironment:\n  conda_file: conda.yml\n"
        "  image: mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04\n")
    done = CliRunner().invoke(main, ["image", str(deployment)])
    assert done.exit_code == 0, done.output
    assert "tabulate==0.9.0" in done.output.splitlines()


def test_no_environment_gives_an_image_of_batchfx_alone(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["image", str(_spec(tmp_path, environment=None))])
    assert done.exit_code == 0, done.output
    assert all(line.startswith("#") for line in done.output.splitlines())


def test_the_build_context_holds_everything_the_dockerfile_copies(tmp_path: Path) -> None:
    out = tmp_path / "context"
    done = CliRunner().invoke(main, ["image", str(_spec(tmp_path)), "--output", str(out)])
    assert done.exit_code == 0, done.output
    assert f"--file infra/gpu/Dockerfile {out}" in done.output
    dockerfile = (out / "infra/gpu/Dockerfile").read_text()
    sources = [part for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE)
               for part in line.split()[:-1] if not part.startswith("--")]
    default = re.search(r"^ARG SCORER_REQUIREMENTS=(\S+)$", dockerfile, re.MULTILINE)
    assert default is not None
    sources = [default.group(1) if s == "${SCORER_REQUIREMENTS}" else s for s in sources]
    assert sources, dockerfile
    for source in sources:  # README.md* is optional in the Dockerfile, present here
        assert list(out.glob(source)), f"{source} is not in the build context"
    requirements = (out / "infra/gpu/scorer-requirements.txt").read_text()
    assert "onnxruntime-gpu[cuda,cudnn]>=1.20\ntabulate==0.9.0\n" in requirements
    assert (out / "batchfx/scoring/host.py").is_file()
    assert not list(out.rglob("__pycache__"))
    # the function app in the image is the scorer alone (test_packaging.py checks which)
    assert (out / "infra/gpu/function_app.py").read_text() == \
        (ROOT / "infra/gpu/function_app.py").read_text()


def test_a_folder_that_holds_files_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "context"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    done = CliRunner().invoke(main, ["image", str(_spec(tmp_path)), "--output", str(out)])
    assert done.exit_code == 2
    assert "exists and is not an empty folder" in done.output
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
