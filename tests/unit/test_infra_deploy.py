"""scripts/deploy --dry-run: the steps, their order and their arguments, with no Azure."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from test_infra_bicep import MAIN, ROOT, Template

DEPLOY = ROOT / "scripts" / "deploy"


def deploy(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run scripts/deploy with fake az and func on PATH that record any call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("az", "func"):
        fake = bin_dir / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/called"\nexit 1\n')
        fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(DEPLOY), *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60, check=False)


def commands(stdout: str) -> list[list[str]]:
    """The commands a dry run shows (lines starting with '+ '), split as the shell would."""
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def kind(command: list[str]) -> str:
    """What a command does: 'provision', 'event grid', 'gpu app' for the deployments of
    main.bicep, else its first words (az acr build, func azure functionapp publish…)."""
    if command[:4] == ["az", "deployment", "group", "create"]:
        params = parameters(command)
        if params.get("deployGpuScorer") == "true":
            return "gpu app"
        return "event grid" if params.get("deployEventGridSubscription") == "true" else (
            "provision")
    return " ".join(word for word in command[:4] if not word.startswith("-"))


def parameters(command: list[str]) -> dict[str, str]:
    start = command.index("--parameters") + 1
    end = next((i for i in range(start, len(command)) if command[i].startswith("--")),
               len(command))
    return dict(pair.split("=", 1) for pair in command[start:end])


GPU_ARGS = ("--dry-run", "-g", "rg1", "-l", "westeurope", "--gpu", "--registry", "myacr1",
            "--gpu-location", "swedencentral", "--image-tag", "t1", "-p",
            "maximumInstanceCount=50")


def test_a_dry_run_shows_every_step_in_order_and_runs_nothing(tmp_path: Path) -> None:
    result = deploy(*GPU_ARGS, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "called").exists(), "a dry run called az or func"
    headings = re.findall(r"^== (\d)/5 (.+)$", result.stdout, re.MULTILINE)
    assert [name for _, name in headings] == [
        "provision", "publish", "event grid", "image", "gpu app"]
    steps = [kind(c) for c in commands(result.stdout)
             if kind(c) not in ("az deployment group show", "az acr show")]
    assert steps == ["az group create", "provision", "func azure functionapp publish",
                     "az functionapp keys list", "event grid", "az acr create",
                     "az acr build", "gpu app"]


def test_each_deployment_keeps_the_earlier_parameters(tmp_path: Path) -> None:
    result = deploy(*GPU_ARGS, tmp_path=tmp_path)
    deployments = [parameters(c) for c in commands(result.stdout)
                   if kind(c) in ("provision", "event grid", "gpu app")]
    assert len(deployments) == 3
    for earlier, later in itertools.pairwise(deployments):
        assert earlier.items() <= later.items()
    assert deployments[0]["maximumInstanceCount"] == "50"
    declared = set(Template(MAIN).json["parameters"])
    assert set(deployments[-1]) <= declared, "a parameter main.bicep does not declare"


def test_the_gpu_app_runs_the_image_built_from_the_scorer_dockerfile(tmp_path: Path) -> None:
    result = deploy(*GPU_ARGS, tmp_path=tmp_path)
    (build,) = [c for c in commands(result.stdout) if kind(c) == "az acr build"]
    assert build[build.index("--file") + 1] == "infra/gpu/Dockerfile"
    assert (ROOT / "infra" / "gpu" / "Dockerfile").is_file()
    image = build[build.index("--image") + 1]
    (gpu,) = [parameters(c) for c in commands(result.stdout) if kind(c) == "gpu app"]
    assert gpu["gpuImage"] == f"myacr1.azurecr.io/{image}" == "myacr1.azurecr.io/batchfx-gpu:t1"
    assert gpu["containerRegistryName"] == "myacr1"
    assert gpu["gpuLocation"] == "swedencentral"


def test_without_gpu_three_steps_and_no_registry(tmp_path: Path) -> None:
    result = deploy("--dry-run", "-g", "rg1", "--principal-id", "0000-1111", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^== \d/(\d) ", result.stdout, re.MULTILINE) == ["3", "3", "3"]
    kinds = [kind(c) for c in commands(result.stdout)]
    assert "az group create" not in kinds  # no --location: the group must exist
    assert not any(k.startswith("az acr") or k == "gpu app" for k in kinds)
    (provision,) = [parameters(c) for c in commands(result.stdout) if kind(c) == "provision"]
    assert provision == {"namePrefix": "batchfx", "principalId": "0000-1111"}


def test_the_data_account_option_reaches_every_deployment(tmp_path: Path) -> None:
    result = deploy("--dry-run", "-g", "rg1", "--data-account", *GPU_ARGS[3:], tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    deployments = [parameters(c) for c in commands(result.stdout)
                   if kind(c) in ("provision", "event grid", "gpu app")]
    assert len(deployments) == 3
    assert all(d["deployDataAccount"] == "true" for d in deployments)
    assert "deployDataAccount" in Template(MAIN).json["parameters"]
    queried = [c[c.index("--query") + 1] for c in commands(result.stdout)
               if kind(c) == "az deployment group show"]
    assert "properties.outputs.dataStorageAccountName.value" in queried
    assert "dataStorageAccountName" in Template(MAIN).json["outputs"]
    without = deploy("--dry-run", "-g", "rg1", tmp_path=tmp_path)
    assert "deployDataAccount" not in without.stdout


@pytest.mark.parametrize(("args", "message"), [
    ((), "--resource-group is required"),
    (("-g",), "-g needs a value"),
    (("-g", "rg1", "--gpu"), "--gpu needs --registry"),
    (("-g", "rg1", "--gpu", "--registry", "my-acr.azurecr.io"), "a registry name, not a URL"),
    (("-g", "rg1", "--registry", "myacr1"), "are for --gpu"),
    (("-g", "rg1", "-p", "novalue"), "expected KEY=VALUE"),
    (("-g", "rg1", "--principal-id", "x", "--me"), "not both"),
    (("-g", "rg1", "--gpu", "--registry", "myacr1", "--scorer-requirements", "nope.txt"),
     "no such file"),
    (("-g", "rg1", "--frobnicate"), "unknown argument '--frobnicate'"),
])
def test_wrong_arguments_are_refused_with_the_reason(args: tuple[str, ...], message: str,
                                                     tmp_path: Path) -> None:
    result = deploy("--dry-run", *args, tmp_path=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_without_dry_run_it_checks_the_tools_first(tmp_path: Path) -> None:
    result = deploy("-g", "rg1", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "not signed in to Azure: run 'az login' first" in result.stderr
    assert (tmp_path / "called").read_text() == "az account show\n"


def test_help_names_every_step() -> None:
    result = subprocess.run([str(DEPLOY), "--help"], capture_output=True, text=True,
                            timeout=60, check=True)
    for step in ("provision", "publish", "event grid", "image", "gpu app", "--dry-run"):
        assert step in result.stdout
