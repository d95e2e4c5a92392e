"""Script environments as Azure ML users write them: a conda file's pip section, a
requirements file or list; what cannot be honoured is refused by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from batchfx.core.environments import Environment, parse_environment, read_environment_files
from batchfx.core.errors import SpecError
from batchfx.core.spec import load_job_spec, parse_job_spec

RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"
CONDA = {"name": "sklearn-env", "channels": ["conda-forge"],
         "dependencies": [f"python={RUNNING}", "pip",
                          {"pip": ["scikit-learn==1.5.2", "joblib  # models", ""]}]}
BASE = {"name": "env-job", "entry_script": "score.py", "source_directory": "code/x",
        "inputs": "data/in", "output": "results/out"}


def problems(value: object) -> list[str]:
    with pytest.raises(SpecError) as refused:
        parse_environment(value)
    return refused.value.problems


def test_a_conda_files_pip_section_is_what_gets_installed() -> None:
    env = parse_environment({"conda_file": CONDA, "image": "mcr.microsoft.com/azureml/x"})
    assert env == Environment(("scikit-learn==1.5.2", "joblib"), RUNNING)
    assert env.to_record() == {"pip": ["scikit-learn==1.5.2", "joblib"], "python": RUNNING}
    assert parse_environment(env.to_record()) == env  # kept normalised, parses back


def test_a_list_is_a_requirements_list_and_the_key_follows_the_content() -> None:
    first = parse_environment(["tabulate==0.9.0"])
    assert first is not None and first == parse_environment({"pip": ["tabulate==0.9.0"]})
    other = parse_environment(["tabulate==0.8.10"])
    assert other is not None and first.key != other.key
    assert len(first.key) == 24


def test_nothing_to_install_is_no_environment() -> None:
    assert parse_environment(None) is None
    assert parse_environment({"conda_file": {"dependencies": ["pip"]}}) is None


def test_a_conda_only_package_is_refused_by_name() -> None:
    conda = {"dependencies": ["cudatoolkit=11.8", {"pip": ["torch"]}]}
    [problem] = problems({"conda_file": conda})
    assert "conda package 'cudatoolkit=11.8'" in problem
    assert "under pip:" in problem


def test_another_python_than_the_apps_is_refused() -> None:
    [problem] = problems({"conda_file": {"dependencies": ["python=3.7", {"pip": ["x"]}]}})
    assert "asks for Python 3.7" in problem and f"runs Python {RUNNING}" in problem


@pytest.mark.parametrize(("value", "says"), [
    ("azureml:sklearn-env:3", "registered Azure ML environment"),
    ("sklearn-env", "registered Azure ML environment"),
    ("conda.yml", "the CLI reads it for you"),
    ({"conda_file": "./conda.yml"}, "the CLI reads it for you"),
    ({"pip": ["--extra-index-url http://evil", "x"]}, "pip options are not taken"),
    ({"pip": "x", "docker": "y"}, "environment.docker: unknown"),
    (3, "environment: got 3"),
])
def test_what_cannot_be_built_is_refused_saying_what_to_do(value: object, says: str) -> None:
    assert any(says in p for p in problems(value))


def test_a_job_spec_keeps_the_normalised_environment() -> None:
    spec = parse_job_spec({**BASE, "environment": {"conda_file": CONDA}})
    assert spec.environment == {"pip": ["scikit-learn==1.5.2", "joblib"], "python": RUNNING}
    assert spec.ignored_settings == {}


def test_the_cli_reads_conda_and_requirements_files_next_to_the_spec(tmp_path: Path) -> None:
    (tmp_path / "conda.yml").write_text(yaml.safe_dump(CONDA))
    (tmp_path / "requirements.txt").write_text("tabulate==0.9.0\n# comment\n")
    job = tmp_path / "job.yml"
    job.write_text(yaml.safe_dump({**BASE, "environment": {"conda_file": "conda.yml"}}))
    spec, _ = load_job_spec(job)
    assert spec.environment == {"pip": ["scikit-learn==1.5.2", "joblib"], "python": RUNNING}
    job.write_text(yaml.safe_dump({**BASE, "environment": "requirements.txt"}))
    assert load_job_spec(job)[0].environment == {"pip": ["tabulate==0.9.0"]}


def test_a_missing_environment_file_is_named_with_where_it_was_looked_for(
        tmp_path: Path) -> None:
    with pytest.raises(SpecError) as refused:
        read_environment_files({"environment": {"conda_file": "envs/conda.yml"}}, tmp_path,
                               yaml.safe_load)
    [problem] = refused.value.problems
    assert "cannot read 'envs/conda.yml'" in problem and str(tmp_path / "envs") in problem


def test_the_pip_settings() -> None:
    from batchfx.core.settings import Settings

    settings = Settings.from_env({"BATCHFX_PIP_INDEX_URL": " https://pkgs.example/simple ",
                                  "BATCHFX_PIP_FIND_LINKS": "/opt/wheels, https://x/w ,"})
    assert settings.pip_index_url == "https://pkgs.example/simple"
    assert settings.pip_find_links == ("/opt/wheels", "https://x/w")
    assert Settings.from_env(settings.to_env()).pip_find_links == settings.pip_find_links
