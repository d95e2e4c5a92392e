"""Errors raised by batchfx.

    BatchfxError                  base of everything batchfx raises on purpose
    ├── ProblemsError             something submitted was refused; ``problems``: one per problem
    │   ├── SpecError             a job spec (or deployment, pipeline, model) was refused
    │   └── ScheduleError         a schedule was refused
    ├── JobNotFoundError          no job has the given id
    ├── JobStateError             the job is in a state that does not allow the operation
    ├── NotRegisteredError        no deployment or pipeline of that name (or version), or deleted
    ├── ScheduleNotFoundError     no schedule has the given name
    ├── ScheduleExistsError       a schedule with the name exists already
    ├── StorageError              an Azure Storage call failed (raised ``from`` the SDK error)
    │   ├── StorageNotFoundError  the container, blob, queue or table does not exist
    │   └── ConflictError         a conditional write lost to a concurrent writer (ETag)
    ├── ScriptError               the scoring script could not be loaded (no ``run``, syntax error…)
    ├── InputError                the inputs cannot be partitioned or read as the spec says
    ├── OutputError               the results could not be assembled (mini-batch schemas differ…)
    └── AzuriteError              the local Azurite emulator could not be started

An exception raised by the user's ``init()``/``run()`` is not an error of batchfx: it is
recorded as a failed try of the mini-batch (data, not a crash).
"""

from __future__ import annotations

__all__ = [
    "AzuriteError",
    "BatchfxError",
    "ConflictError",
    "InputError",
    "JobNotFoundError",
    "JobStateError",
    "NotRegisteredError",
    "OutputError",
    "ProblemsError",
    "ScheduleError",
    "ScheduleExistsError",
    "ScheduleNotFoundError",
    "ScriptError",
    "SpecError",
    "StorageError",
    "StorageNotFoundError",
]


class BatchfxError(Exception):
    """Base of every error batchfx raises on purpose."""


class ProblemsError(BatchfxError):
    """Something submitted was refused; one message per problem, each naming field, value
    and fix. A subclass says what was refused (``refused``)."""

    refused = "input"

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"invalid {self.refused}:\n"
                         + "\n".join(f"  - {p}" for p in self.problems))


class SpecError(ProblemsError):
    """A job spec was refused; one message per problem, each naming field, value and fix."""

    refused = "job spec"


class ScheduleError(ProblemsError):
    """A schedule was refused; one message per problem, each naming field, value and fix."""

    refused = "schedule"


class NotRegisteredError(BatchfxError):
    """No deployment or pipeline has the given name (or version), or it was deleted."""


class ScheduleNotFoundError(BatchfxError):
    """No schedule has the given name."""


class ScheduleExistsError(BatchfxError):
    """A schedule with the name exists already."""


class JobNotFoundError(BatchfxError):
    """No job has the given id."""


class JobStateError(BatchfxError):
    """The job's state does not allow the operation."""


class StorageError(BatchfxError):
    """An Azure Storage call failed."""


class StorageNotFoundError(StorageError):
    """The container, blob, queue or table does not exist."""


class ConflictError(StorageError):
    """A conditional write lost to a concurrent writer."""


class ScriptError(BatchfxError):
    """The scoring script could not be loaded or does not follow the contract."""


class InputError(BatchfxError):
    """The inputs cannot be partitioned or read as the spec says (not Parquet, a line break
    inside a quoted CSV field, a file without the key=value folder of a partition key…)."""


class DiskFullError(BatchfxError):
    """This worker's disk is full: the mini-batch's try is recorded as failed with the
    reason, and its message comes back for another try (perhaps on another machine)."""


class OutputError(BatchfxError):
    """The job's results could not be assembled."""


class AzuriteError(BatchfxError):
    """The local Azurite emulator could not be started."""
