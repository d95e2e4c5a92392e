"""Which containers a job may use."""

from __future__ import annotations

import pytest

from batchfx.access import access_problem
from batchfx.settings import Settings

APP = Settings(jobs_container="batchfx")
LOCKED = Settings(jobs_container="batchfx", allowed_containers=("data", "results"))


@pytest.mark.parametrize(
    ("settings", "field", "container", "prefix", "refusal"),
    [
        (APP, "inputs.path", "data", "2026/11/22", None),
        (APP, "output", "results", "nightly", None),
        (APP, "source_directory", "batchfx", "uploads/code/abc/files", None),
        (APP, "inputs.path", "inbox", "digits/2026-11-22", None),
        (APP, "output", "batchfx", "anything", "holds the app's job state"),
        (APP, "inputs.path", "batchfx", "jobs/other-job/results", "is the app's job state"),
        (APP, "inputs.path", "batchfx", "jobs", "is the app's job state"),
        (APP, "model", "batchfx-durable", "instances", "orchestration state"),
        (APP, "output", "batchfx-durable", "x", "orchestration state"),
        (LOCKED, "inputs.path", "data", "x", None),
        (LOCKED, "output", "results", "x", None),
        (LOCKED, "inputs.path", "inbox", "digits/x", None),
        (LOCKED, "inputs.path", "secrets", "x", "not one this app may use; allowed: data, results"),
        (LOCKED, "output", "elsewhere", "x", "BATCHFX_ALLOWED_CONTAINERS"),
    ],
)
def test_access(settings: Settings, field: str, container: str, prefix: str,
                refusal: str | None) -> None:
    problem = access_problem(settings, field, container, prefix)
    if refusal is None:
        assert problem is None
    else:
        assert problem is not None and refusal in problem and problem.startswith(field)


def test_allowed_containers_come_from_the_app_setting() -> None:
    settings = Settings.from_env({"BATCHFX_ALLOWED_CONTAINERS": " data, results ,,"})
    assert settings.allowed_containers == ("data", "results")
    assert Settings.from_env(settings.to_env()).allowed_containers == ("data", "results")
