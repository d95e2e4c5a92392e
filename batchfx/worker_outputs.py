"""Uploading what a worker's script wrote to AZUREML_BI_OUTPUT_PATH, and its log."""

from __future__ import annotations

import logging
import os

from batchfx.records import JobRecord
from batchfx.scoring.contract import ScriptConfig
from batchfx.storage import Storage

__all__ = ["sync_worker_outputs"]

logger = logging.getLogger(__name__)

# (path) -> (size, mtime) already uploaded by this process
_uploaded: dict[str, tuple[int, float]] = {}


def _changed_files(root: str) -> list[tuple[str, str]]:
    changed = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue
            if _uploaded.get(path) != (stat.st_size, stat.st_mtime):
                changed.append((path, os.path.relpath(path, root).replace(os.sep, "/")))
                _uploaded[path] = (stat.st_size, stat.st_mtime)
    return changed


def sync_worker_outputs(storage: Storage, job: JobRecord, config: ScriptConfig) -> int:
    """Upload new or changed custom outputs and the worker log; returns how many files."""
    count = 0
    for path, relative in _changed_files(config.output_dir):
        storage.blobs.upload_file(job.output_container, f"{job.output_prefix}/{relative}", path)
        count += 1
    if config.log_path and os.path.isfile(config.log_path):
        log_dir = os.path.dirname(config.log_path)
        for path, relative in _changed_files(log_dir):
            storage.blobs.upload_file(job.output_container,
                                      f"{job.output_prefix}/logs/{relative}", path)
            count += 1
    if count:
        logger.debug("job %s: uploaded %d worker output files", job.job_id, count)
    return count
