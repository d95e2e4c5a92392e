"""What submit checks of a spec's paths before anything is written: each container or
local folder may be used and holds what the job needs; and the versions of the local code,
model and side-input folders the job is submitted with."""

from __future__ import annotations

import os
import re

from batchfx.core.access import access_problem, local_access_problem
from batchfx.core.errors import InputError, SpecError
from batchfx.core.models import parse_model_reference
from batchfx.core.packing import select_files
from batchfx.core.records import JobRecord
from batchfx.core.spec import InputSpec, JobSpec, split_source_path, split_storage_path
from batchfx.scoring.mlflow.detect import find_mlmodel_in
from batchfx.services.staging import folder_version
from batchfx.storage import LOCAL, Storage, is_local_path

__all__ = ["local_pins", "storage_path_problems"]


def _model_paths(spec: JobSpec) -> list[tuple[str, str]]:
    """The spec's models given as folders (registered ones are resolved apart)."""
    out: list[tuple[str, str]] = []
    for field, value in spec.model_entries:
        try:
            if parse_model_reference(field, value) is None:
                out.append((field, value))
        except SpecError:
            continue  # reported by the spec's own validation
    return out


def _inputs(spec: JobSpec) -> dict[str, InputSpec]:
    """Each input by how problems name its path: ``inputs.path``, or ``inputs[1].path``."""
    return {f"{spec.input_field(i)}.path": source for i, source in enumerate(spec.input_list)}


def storage_path_problems(storage: Storage, spec: JobSpec) -> list[str]:
    """Problems with the spec's storage locations: refused before anything is written."""
    problems: list[str] = []
    fields: list[tuple[str, str]] = [(field, source.path)
                                     for field, source in _inputs(spec).items()]
    if spec.source_directory:
        fields.append(("source_directory", spec.source_directory))
    fields += _model_paths(spec)
    fields += [(f"side_inputs.{k}", v) for k, v in spec.side_inputs.items()]
    if spec.output:
        fields.append(("output", spec.output))
    for field, path in fields:
        try:
            container, prefix = (split_storage_path(field, path) if field == "output"
                                 else split_source_path(field, path))
        except SpecError as exc:
            problems += exc.problems
            continue
        refused = (local_access_problem(storage.settings, field, prefix,
                                        allowed=storage.local.allowed(prefix))
                   if container == LOCAL
                   else access_problem(storage.settings, field, container, prefix))
        if refused:
            problems.append(refused)
            continue
        if field == "output":  # created on demand; never inside another job's
            problem = _inside_a_job_output(storage, path, container, prefix)
            if problem:
                problems.append(problem)
            continue
        try:
            problem = _missing(storage, spec, field, path, container, prefix)
        except InputError as exc:  # a local folder that cannot be listed as it is
            problem = str(exc)
        if problem:
            problems.append(problem)
    return problems


# A job's id as new_job_id makes it: <name>-<yyyymmdd>t<hhmmss>-<6 hex digits>.
_JOB_ID_SEGMENT = re.compile(r"[a-z0-9][a-z0-9-]*-\d{8}t\d{6}-[0-9a-f]{6}")


def _inside_a_job_output(storage: Storage, path: str, container: str,
                         prefix: str) -> str | None:
    """Why ``output`` may not be used: it lies in another job's output folder (whose
    downloads would then mix in this job's files), or None."""
    for segment in prefix.split("/"):
        if not _JOB_ID_SEGMENT.fullmatch(segment):
            continue
        found = storage.tables.get(storage.settings.jobs_table, JobRecord.PARTITION, segment)
        if found is None:
            continue
        other = JobRecord.from_entity(found.values)
        if other.output_container == container and (
                prefix == other.output_prefix or prefix.startswith(other.output_prefix + "/")):
            return (f"output: {path!r} is inside the output folder of job {other.job_id} "
                    f"({other.output_location}) — a job's output folder holds only that "
                    "job's files; name a folder outside it (each job writes under "
                    "<output>/<its id>)")
    return None


def _missing(storage: Storage, spec: JobSpec, field: str, path: str, container: str,
             prefix: str) -> str | None:
    """Why nothing can be read at ``path`` for ``field``, or None."""
    files = storage.files(container)
    where = "on this machine" if container == LOCAL else \
        f"in {storage.settings.account_of(container)}"
    if container == LOCAL:
        if not os.path.exists(prefix):
            return f"{field}: {path!r} does not exist {where} — fix the path"
    elif not storage.blobs.container_exists(container):
        return (f"{field}: container {container!r} does not exist {where} — upload the data "
                f"first or fix the path {path!r}")
    if field.startswith("model") and spec.entry_script is None:
        base = f"{prefix}/" if prefix else ""
        names = [r.name[len(base):] for r in files.list_names(container, base)]
        if find_mlmodel_in(names) is None:
            return (f"entry_script: missing, and model {path!r} is not an MLflow model folder "
                    "(no MLmodel file) — give entry_script and source_directory, or point "
                    "model at an MLflow model")
        return None
    if field == "source_directory":
        script = f"{prefix}/{spec.entry_script}" if prefix else str(spec.entry_script)
        if not files.exists(container, script):
            return (f"entry_script: {spec.entry_script!r} not found in source_directory "
                    f"{path!r} — " + ("fix entry_script or source_directory"
                                      if container == LOCAL else
                                      "upload the code folder with it"))
        return None
    source = _inputs(spec).get(field)
    if source is not None and source.type == "uri_file":
        return None if files.exists(container, prefix) else (
            f"{field}: file {path!r} does not exist")
    if (source is not None and source.type == "tabular" and prefix
            and files.exists(container, prefix)):
        return None  # a tabular path may name one file
    if source is None and (os.path.isfile(prefix) if container == LOCAL else
                           bool(prefix) and files.exists(container, prefix)):
        return None  # a model or side input may be one file
    if not _any_blob(storage, container, prefix, data_only=source is not None):
        return f"{field}: nothing found under {path!r} — zero inputs to score"
    return None


def _any_blob(storage: Storage, container: str, prefix: str, *, data_only: bool = False
              ) -> bool:
    # Inputs: markers and hidden files (_SUCCESS, .crc) are skipped by the partitioner, so a
    # folder holding only those has zero inputs.
    files = storage.files(container)
    for refs, _ in files.list_pages(container, f"{prefix}/" if prefix else "",
                                    page_size=100 if data_only else 1):
        if any(True for _ in select_files(refs, prefix, None)) if data_only else refs:
            return True
    return False


def local_pins(storage: Storage, spec: JobSpec) -> dict[str, str]:
    """The versions of the local code, model and side-input folders the job is submitted
    with: used in place, a folder changed later fails the job's next mini-batches."""
    fields = [("source_directory", spec.source_directory), *_model_paths(spec)]
    fields += [(f"side_inputs.{k}", v) for k, v in spec.side_inputs.items()]
    pins = {}
    for field, path in fields:
        if path and is_local_path(path):
            pins[field] = folder_version(storage, LOCAL, split_source_path(field, path)[1])[0]
    return pins
