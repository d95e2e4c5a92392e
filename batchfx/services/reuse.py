"""``allow_reuse``: an identical job (same inputs' ETags, code, model and settings) reuses
the results of an earlier completed one instead of scoring again."""

from __future__ import annotations

import hashlib
import json
import logging

from batchfx.core.errors import JobNotFoundError
from batchfx.core.models import JobModel
from batchfx.core.packing import select_files
from batchfx.core.records import JobRecord, JobState
from batchfx.core.spec import InputSpec, JobSpec, split_source_path
from batchfx.scoring.mlflow import SCORE_SCRIPT as MLFLOW_SCORE_SCRIPT
from batchfx.services.jobs import get_job
from batchfx.storage import BlobRef, Storage

__all__ = ["copy_outputs", "find_reusable", "remember_result", "reuse_key"]

logger = logging.getLogger(__name__)

REUSE_PARTITION = "reuse"
# Settings that change how a job runs but not what it produces.
_NOT_IN_KEY = {"name", "output", "allow_reuse", "logging_level", "process_count_per_node",
               "node_count", "description", "compute_target", "environment"}
# Written per job; a reused job writes its own.
_OWN_FILES = {"job_result.txt", "progress_overview.json"}


def _version(ref: BlobRef) -> str:
    # The content hash when the service has one (re-uploading the same bytes keeps it),
    # else the ETag (any write changes it).
    return f"md5:{ref.content_md5}" if ref.content_md5 else f"etag:{ref.etag}"


def _listing(storage: Storage, field: str, path: str, hasher: hashlib._Hash,
             source: InputSpec | None = None) -> None:
    """Hash the names and versions under ``path``; of an input, only the files it scores
    (its glob; never markers such as ``_SUCCESS``, which a blob drop may write again)."""
    container, prefix = split_source_path(field, path)
    hasher.update(f"\n[{field}] {container}/{prefix}".encode())
    files = storage.files(container)
    listed = False
    for refs, _ in files.list_pages(container, f"{prefix}/" if prefix else ""):
        if source is not None:
            refs = list(select_files(refs, prefix, source.glob))
        for ref in refs:
            listed = True
            hasher.update(f"\n{ref.name}\t{_version(ref)}".encode())
    if not listed and prefix:  # a model or side input may be one file
        for refs, _ in files.list_pages(container, prefix, page_size=1):
            for ref in refs[:1]:
                if ref.name == prefix:
                    hasher.update(f"\n{ref.name}\t{_version(ref)}".encode())


def reuse_key(storage: Storage, spec: JobSpec, models: list[JobModel] | None = None) -> str:
    """A hash of the settings that matter and every input, code and model blob's ETag."""
    hasher = hashlib.sha256()
    settings = {k: v for k, v in spec.to_record().items() if k not in _NOT_IN_KEY}
    hasher.update(json.dumps(settings, sort_keys=True).encode())
    for index, source in enumerate(spec.input_list):
        field = f"{spec.input_field(index)}.path"
        if source.type == "uri_file":
            container, name = split_source_path(field, source.path)
            folder = name.rsplit("/", 1)[0] if "/" in name else ""
            for ref in storage.files(container).list_names(container, folder):
                if ref.name == name:
                    hasher.update(f"\n[input] {container}/{ref.name}\t{_version(ref)}".encode())
        else:
            _listing(storage, field, source.path, hasher, source)
    if spec.source_directory:
        _listing(storage, "source_directory", spec.source_directory, hasher)
    else:  # batchfx's own MLflow scoring script: a new version may write other rows
        hasher.update(b"\n[script] " + hashlib.sha256(MLFLOW_SCORE_SCRIPT.read_bytes()).digest())
    for model in models or []:  # as resolved at submit: registered ones pinned
        hasher.update(f"\n[model] {model.name}:{model.version}/{model.asset}".encode())
        _listing(storage, "model", model.path, hasher)
    for name, path in sorted(spec.side_inputs.items()):
        _listing(storage, f"side_inputs.{name}", path, hasher)
    return hasher.hexdigest()


def find_reusable(storage: Storage, key: str) -> JobRecord | None:
    """The completed job recorded under ``key``, if it still exists with its outputs."""
    found = storage.tables.get(storage.settings.jobs_table, REUSE_PARTITION, key)
    if found is None:
        return None
    try:
        job = get_job(storage, str(found.values["job_id"]))
    except JobNotFoundError:
        return None
    if job.state is not JobState.COMPLETED or not job.outcome.outputs_ready:
        return None
    # Its outputs may have been deleted since: then its results are gone, not reusable.
    needed = ["job_result.txt"]
    spec = job.spec
    if spec.get("output_action", "append_row") == "append_row" and not spec.get(
            "partition_output"):
        needed.append(str(spec.get("append_row_file_name", "parallel_run_step.txt")))
    if not all(storage.blobs.exists(job.output_container, f"{job.output_prefix}/{name}")
               for name in needed):
        logger.info("job %s: its outputs are gone; not reused", job.job_id)
        return None
    return job


def remember_result(storage: Storage, key: str, job: JobRecord) -> None:
    """Record a completed job as the result for ``key`` (the newest one wins)."""
    storage.tables.replace(storage.settings.jobs_table,
                           {"PartitionKey": REUSE_PARTITION, "RowKey": key,
                            "job_id": job.job_id, "created": job.created}, etag=None)


def copy_outputs(storage: Storage, source: JobRecord, target: JobRecord) -> int:
    """Copy the earlier job's results and reports into the new job's output; returns files."""
    base = f"{source.output_prefix}/"
    count = 0
    for ref in storage.blobs.list_names(source.output_container, base):
        relative = ref.name[len(base):]
        if relative in _OWN_FILES:
            continue
        storage.blobs.copy(source.output_container, ref.name, target.output_container,
                           f"{target.output_prefix}/{relative}")
        count += 1
    logger.info("job %s: reused %d output files of job %s", target.job_id, count,
                source.job_id)
    return count
