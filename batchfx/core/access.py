"""Which containers and local folders a job may read from and write to (pure).

Jobs read and write only the app's own storage account (URLs are refused by the spec),
only the containers ``BATCHFX_ALLOWED_CONTAINERS`` names when it is set, and never the
state of the app or of its host, whatever the settings: the root of the app's container and
its job records under ``jobs/``, the local Durable container, the Functions host's
containers (``azure-webjobs-*``: function keys among them), Durable Functions' task hub
containers (``*-leases``, ``*-largemessages``, ``*-applease``) and deployment packages
(``app-package-*``). Jobs of the local runner may also read folders of its machine in place,
under the folders ``BATCHFX_LOCAL_ROOTS`` names (none in Azure).
"""

from __future__ import annotations

from batchfx.core.settings import Settings

__all__ = ["access_problem", "local_access_problem"]

_HOST_PREFIXES = ("azure-webjobs-", "app-package-")
_HUB_SUFFIXES = ("-leases", "-largemessages", "-applease")


def _system_container(settings: Settings, container: str) -> bool:
    """A container of the app's orchestration, of the Functions host or of its deployment."""
    return (container == f"{settings.jobs_container}-durable"
            or container.startswith(_HOST_PREFIXES) or container.endswith(_HUB_SUFFIXES))


def access_problem(settings: Settings, field: str, container: str, prefix: str) -> str | None:
    """Why ``field`` may not use ``container/prefix``, or None when it may."""
    internal = settings.jobs_container
    if _system_container(settings, container):
        return (f"{field}: container {container!r} holds the state of the app or of its "
                "Functions host (orchestration, function keys, deployment); use a container "
                "of your own")
    if container == internal:
        if field == "output":
            return (f"output: container {internal!r} holds the app's job state; write "
                    "results to a container of your own, e.g. output: results/nightly")
        if not prefix or prefix == "jobs" or prefix.startswith("jobs/"):
            what = f"{container}/{prefix}" if prefix else f"the whole container {container!r}"
            return (f"{field}: {what} holds the app's job state, not data; point it at your "
                    "own inputs (a folder of the container, such as uploads/…, or a container "
                    "of your own)")
        return None  # uploads/ (the CLI's snapshots) and other data the app holds
    allowed = settings.allowed_containers
    if allowed and container not in allowed and container not in (
            settings.inbox_container, settings.outputs_container):
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
