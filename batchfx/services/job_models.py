"""A job's models resolved at submit: registered names pinned to their versions, folders
named after themselves or as the spec names them (see ``batchfx.core.models``). Stored with the
job, so a model registered later never changes a job already submitted."""

from __future__ import annotations

from collections import Counter

from batchfx.core.errors import NotRegisteredError, SpecError
from batchfx.core.models import JobModel, parse_model_reference
from batchfx.core.spec import JobSpec
from batchfx.services.registry import get_model
from batchfx.storage import Storage

__all__ = ["resolve_models"]


def resolve_models(storage: Storage, spec: JobSpec) -> list[JobModel]:
    """Each model of the spec, in its order; SpecError names unknown ones and clashes."""
    models: list[JobModel] = []
    problems: list[str] = []
    names = spec.model_names
    for field, value in spec.model_entries:
        reference = parse_model_reference(field, value)
        if reference is None:
            models.append(JobModel.for_path(value, names.get(field)))
            continue
        try:
            models.append(get_model(storage, reference.name, reference.version).job_model())
        except NotRegisteredError as exc:
            problems.append(f"{field}: {exc}")
    clashes = [key for key, n in Counter((m.name, m.version) for m in models).items() if n > 1]
    for name, version in clashes:
        problems.append(f"models: two models would be {name} version {version} (a folder is "
                        "named after itself, version 1) — register them under their own names "
                        "(`batchfx model create`) or give each folder its own name")
    if problems:
        raise SpecError(problems)
    return models

