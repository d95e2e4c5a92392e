"""Uploading what a worker's script wrote to AZUREML_BI_OUTPUT_PATH, and its log.

Each worker has its own output folder, and its files land under the job's output with
the same relative name, so two workers writing ``summary.csv`` would overwrite each other.
The first worker to upload a name owns it: it creates a small marker blob naming itself
and the mini-batch it had just run (create-if-absent, so exactly one worker wins). A later
upload of the name overwrites when it comes from the owner (the same writer, a newer
version) or from a later try of the same mini-batch on another worker (a retry, which takes
the name over); any other upload is not made but recorded as a collision, which finalize
reports (the job fails, naming file and workers). A worker is ``host:pid`` of the process
scoring mini-batches.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterable
from stat import S_ISREG
from typing import Any

from batchfx.core.errors import ConflictError
from batchfx.core.records import JobRecord
from batchfx.core.script_contract import ScriptConfig
from batchfx.storage import Storage

__all__ = ["custom_output_problems", "sync_worker_outputs"]

logger = logging.getLogger(__name__)

# (path) -> (size, mtime) already uploaded by this process
_uploaded: dict[str, tuple[int, float]] = {}
# (job id, relative name, worker) owned by this process's worker
_owned: set[tuple[str, str, str]] = set()
_MAX_LISTED = 10
# One lock per folder: a folder's scan and uploads are one step, so a slow upload of a file
# as it was can never land after a later thread's upload of it as it is now (the script
# processes of one pool share their log folder, and their runs end in concurrent threads).
_folder_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def _folder_lock(folder: str) -> threading.Lock:
    with _locks_lock:
        return _folder_locks.setdefault(folder, threading.Lock())


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _markers(job_id: str) -> str:
    return f"jobs/{job_id}/custom-outputs/"


def _collisions(job_id: str) -> str:
    return f"jobs/{job_id}/custom-output-collisions/"


def _changed_files(root: str) -> list[tuple[str, str]]:
    changed = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                stat = os.lstat(path)
            except FileNotFoundError:
                continue
            if not S_ISREG(stat.st_mode):  # a FIFO would block the upload, a link lead out
                if _uploaded.get(path) != (-1, 0.0):
                    _uploaded[path] = (-1, 0.0)
                    logger.warning("custom output %s is not a regular file: not uploaded", path)
                continue
            if _uploaded.get(path) != (stat.st_size, stat.st_mtime):
                changed.append((path, os.path.relpath(path, root).replace(os.sep, "/")))
                _uploaded[path] = (stat.st_size, stat.st_mtime)
    return changed


def _claim(storage: Storage, job: JobRecord, relative: str, me: str, mini_batch: str) -> bool:
    """Whether this worker may upload ``relative``: it owns the name, or now claims it."""
    if (job.job_id, relative, me) in _owned:
        return True
    container = storage.settings.jobs_container
    marker = _markers(job.job_id) + relative
    claim = json.dumps({"worker": me, "mini_batch": mini_batch}).encode()
    try:
        storage.blobs.upload(container, marker, claim, overwrite=False)
    except ConflictError:
        found = json.loads(storage.blobs.download(container, marker))
        owner = str(found.get("worker", "?"))
        if owner != me and found.get("mini_batch") == mini_batch:
            # A later try of the same mini-batch on another worker: its files replace those
            # of the try before, which wrote the same names.
            storage.blobs.upload(container, marker, claim)
        elif owner != me:
            record = {"file": relative, "owner": owner, "worker": me}
            storage.blobs.upload(container, f"{_collisions(job.job_id)}{relative}/"
                                 f"{me.replace(':', '-')}.json", json.dumps(record).encode())
            logger.error("job %s: custom output %s of worker %s not uploaded: worker %s "
                         "wrote a file of that name first", job.job_id, relative, me, owner)
            return False
    _owned.add((job.job_id, relative, me))
    return True


def sync_worker_outputs(storage: Storage, job: JobRecord, config: ScriptConfig,
                        mini_batch: str, *, owner: str | None = None) -> int:
    """Upload new or changed custom outputs and the worker log, right after a run of
    ``mini_batch`` (the files changed are that run's); returns how many files.

    ``owner`` names the script process whose folder ``config.output_dir`` is (default: this
    worker process)."""
    count = 0
    me = owner or _worker()
    with _folder_lock(config.output_dir):
        for path, relative in _changed_files(config.output_dir):
            if _claim(storage, job, relative, me, mini_batch):
                storage.blobs.upload_file(job.output_container,
                                          f"{job.output_prefix}/{relative}", path)
                count += 1
    if config.log_path and os.path.isfile(config.log_path):
        log_dir = os.path.dirname(config.log_path)
        with _folder_lock(log_dir):
            for path, relative in _changed_files(log_dir):
                storage.blobs.upload_file(job.output_container,
                                          f"{job.output_prefix}/logs/{relative}", path)
                count += 1
    if count:
        logger.debug("job %s: uploaded %d worker output files", job.job_id, count)
    return count


def _listed(lines: list[str]) -> list[str]:
    if len(lines) <= _MAX_LISTED:
        return lines
    return [*lines[:_MAX_LISTED], f"and {len(lines) - _MAX_LISTED} more"]


def custom_output_problems(storage: Storage, job: JobRecord, written: Iterable[str]
                           ) -> list[str]:
    """Custom outputs that were lost: a name written by two workers (the second copy was
    not uploaded), or one that batchfx's own outputs (``written``) replaced."""
    container = storage.settings.jobs_container
    found: dict[str, list[str]] = {}
    for ref in storage.blobs.list_names(container, _collisions(job.job_id)):
        data: dict[str, Any] = json.loads(storage.blobs.download(container, ref.name))
        found.setdefault(str(data["file"]), [str(data["owner"])]).append(str(data["worker"]))
    problems = [
        f"custom output {name!r} was written by workers {', '.join(workers)}: only the first "
        f"one's copy was uploaded; give each worker's files their own names in "
        f"AZUREML_BI_OUTPUT_PATH (e.g. with os.getpid() or the mini-batch index)"
        for name, workers in sorted(found.items())]
    ours = set(written)
    base = _markers(job.job_id)
    replaced = [ref.name[len(base):] for ref in storage.blobs.list_names(container, base)
                if ref.name[len(base):] in ours]
    problems += [
        f"custom output {name!r} has the name of an output batchfx writes, which replaced "
        "it; give the file another name" for name in sorted(replaced)]
    return _listed(problems)
