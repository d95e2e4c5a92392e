"""A job's folders on a worker machine, and their removal once the job has ended.

Each job has its own folders under ``BATCHFX_WORK_DIR``: ``jobs/<job id>/`` holds its code,
fetched for it alone (never a copy another job's script could have written to, nor one
where a file written in ``init()`` shows up in the next job), and ``workers/<job id>/`` the
custom outputs and logs of its script processes. A worker process removes the folders of
ended jobs it finds there, at most every ``SWEEP_EVERY_S`` and when it stops, so a machine
keeps no job's files after the job. Models and side inputs fetched from storage stay in a
cache shared by jobs of the same content (``snapshots/``), read-only.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from batchfx.core.records import JobRecord, JobState
from batchfx.core.work_cache import evict

if TYPE_CHECKING:
    from batchfx.storage import Storage

__all__ = ["SWEEP_EVERY_S", "ended_jobs_of", "job_code_root", "job_folders",
           "sweep_ended_jobs", "sweep_now_and_then"]

logger = logging.getLogger(__name__)

SWEEP_EVERY_S = 60.0
# A job this machine's storage does not know (another app shared the work folder, or its
# local emulator is gone) is taken as ended once its folders are this old.
UNKNOWN_AFTER_S = 24 * 3600.0
_KINDS = ("jobs", "workers")
_lock = threading.Lock()
_last_sweep = 0.0


def job_code_root(work_dir: str, job_id: str) -> str:
    """Where a job's own copy of its code is fetched (one folder per code version)."""
    return os.path.join(work_dir, "jobs", job_id)


def job_folders(work_dir: str, job_id: str) -> list[str]:
    """Every folder a job has on this machine."""
    return [os.path.join(work_dir, kind, job_id) for kind in _KINDS]


def ended_jobs_of(storage: Storage) -> Callable[[str], bool]:
    """Whether a job of ``storage`` has ended: the job records are listed once, on the
    first question (one query for the whole sweep, however many folders there are)."""
    states: dict[str, str] | None = None  # job id -> state, once listed

    def ended(job_id: str) -> bool:
        nonlocal states
        if states is None:
            states = {str(row["RowKey"]): str(row.get("state", ""))
                      for row in storage.tables.query(storage.settings.jobs_table,
                                                      JobRecord.PARTITION,
                                                      select=["RowKey", "state"])}
        if job_id in states:
            return states[job_id] in {s.value for s in JobState if s.is_final}
        folders = [f for f in job_folders(storage.settings.work_dir, job_id)
                   if os.path.isdir(f)]
        newest = max((os.stat(f).st_mtime for f in folders), default=0.0)
        return time.time() - newest > UNKNOWN_AFTER_S
    return ended


def sweep_ended_jobs(work_dir: str, ended: Callable[[str], bool],
                     cache_budget_mb: float = 0.0) -> list[str]:
    """Remove the folders of the jobs ``ended`` says have ended, and trim the shared caches
    to ``cache_budget_mb`` (``work_cache.evict``; 0: no budget); returns the ended jobs'
    ids."""
    ids: set[str] = set()
    for kind in _KINDS:
        try:
            ids.update(e.name for e in os.scandir(os.path.join(work_dir, kind)) if e.is_dir())
        except FileNotFoundError:
            continue
    removed = []
    for job_id in sorted(ids):
        try:
            done = ended(job_id)
        except Exception as exc:  # storage unreachable: try again next time
            logger.debug("job %s: state unknown (%s); its folders are kept", job_id, exc)
            continue
        if done:
            for folder in job_folders(work_dir, job_id):
                _remove(folder)
            removed.append(job_id)
    if removed:
        logger.info("removed the work folders of %d ended jobs", len(removed))
    try:
        evict(work_dir, int(cache_budget_mb * 2**20), ended)
    except OSError as exc:  # a cache entry vanished or could not be read: next time
        logger.warning("trimming the work folder caches failed: %s", exc)
    return removed


def sweep_now_and_then(work_dir: str, ended: Callable[[str], bool],
                       cache_budget_mb: float = 0.0) -> None:
    """``sweep_ended_jobs`` at most every SWEEP_EVERY_S in this process."""
    global _last_sweep
    now = time.monotonic()
    with _lock:
        if now - _last_sweep < SWEEP_EVERY_S:
            return
        _last_sweep = now
    sweep_ended_jobs(work_dir, ended, cache_budget_mb)


def _remove(folder: str) -> None:
    def writable(function: Callable[..., object], path: str, _: object) -> None:
        os.chmod(os.path.dirname(path), 0o700)  # read-only staged folders can be removed
        function(path)

    if os.path.isdir(folder):
        shutil.rmtree(folder, onerror=writable)
