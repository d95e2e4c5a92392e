"""Which containers a job may use."""

from __future__ import annotations

import pytest

from batchfx.core.access import access_problem
from batchfx.core.settings import Settings

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
        (APP, "inputs.path", "batchfx", "jobs/other-job/results", "holds the app's job state"),
        (APP, "inputs.path", "batchfx", "jobs", "holds the app's job state"),
        (APP, "model", "batchfx-durable", "instances", "state of the app"),
        (APP, "output", "batchfx-durable", "x", "state of the app"),
        (APP, "inputs.path", "batchfx", "", "the whole container 'batchfx' holds the app's"),
        (APP, "model", "batchfx", "", "holds the app's job state"),
        (APP, "side_inputs.x", "azure-webjobs-secrets", "", "function keys"),
        (APP, "inputs.path", "azure-webjobs-hosts", "locks", "Functions host"),
        (APP, "inputs.path", "batchfx-leases", "", "state of the app"),
        (APP, "inputs.path", "batchfx-largemessages", "x", "state of the app"),
        (APP, "source_directory", "app-package-abc123", "", "deployment"),
        (LOCKED, "inputs.path", "batchfx-applease", "", "state of the app"),
        (LOCKED, "inputs.path", "data", "x", None),
        (LOCKED, "output", "results", "x", None),
        (LOCKED, "inputs.path", "inbox", "digits/x", None),
        (LOCKED, "output", "outputs", "digits/digits", None),  # deployments' default
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


def test_the_hosts_containers_are_refused_even_when_allowed_by_the_setting() -> None:
    settings = Settings(jobs_container="batchfx",
                        allowed_containers=("azure-webjobs-secrets", "data"))
    assert access_problem(settings, "inputs.path", "azure-webjobs-secrets", "keys") is not None
    assert access_problem(settings, "inputs.path", "data", "keys") is None
