"""Which containers and local folders a job may read from and write to (pure).

Jobs read and write only the app's own storage account (URLs are refused by the spec),
only the containers ``BATCHFX_ALLOWED_CONTAINERS`` names when it is set, and never the
app's internal state: the Durable container, and the job records under ``jobs/``. Jobs
of the local runner may also read folders of its machine in place, under the folders
``BATCHFX_LOCAL_ROOTS`` names (none in Azure).
"""

from __future__ import annotations

from batchfx.settings import Settings

__all__ = ["access_problem", "local_access_problem"]

_READ_FIELDS_IN_APP_CONTAINER = "uploads/"


def access_problem(settings: Settings, field: str, container: str, prefix: str) -> str | None:
    """Why ``field`` may not use ``container/prefix``, or None when it may."""
    internal = settings.jobs_container
    if container == f"{internal}-durable":
        return (f"{field}: container {container!r} holds the app's orchestration state; "
                "use a container of your own")
    if container == internal:
        if field == "output":
            return (f"output: container {internal!r} holds the app's job state; write "
                    "results to a container of your own, e.g. output: results/nightly")
        if prefix == "jobs" or prefix.startswith("jobs/"):
            return (f"{field}: {container}/{prefix} is the app's job state, not data; "
                    "point it at your own inputs")
        return None  # uploads/ (the CLI's snapshots) and other data the app holds
    allowed = settings.allowed_containers
    if allowed and container not in allowed and container != settings.inbox_container:
        return (f"{field}: container {container!r} is not one this app may use; allowed: "
                f"{', '.join(sorted(allowed))} (app setting BATCHFX_ALLOWED_CONTAINERS)")
    return None


def local_access_problem(settings: Settings, field: str, path: str, *,
                         allowed: bool) -> str | None:
    """Why ``field`` may not read the local folder ``path`` (``allowed``: whether it lies
    under one of the app's local roots, links resolved), or None when it may."""
    if not settings.local_roots:
        return (f"{field}: {path!r} is a folder of the machine that submitted the job; this app "
                "reads only its storage account — upload it (`batchfx submit` uploads local "
                "folders) or give container/prefix")
    if not allowed:
        return (f"{field}: {path!r} is not under a folder this app may read in place "
                f"({', '.join(settings.local_roots)}; app setting BATCHFX_LOCAL_ROOTS)")
    return None
