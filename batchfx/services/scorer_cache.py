"""What a scoring worker process keeps between mini-batches to spare storage round trips.

- A job's record, for ``JOB_CACHE_S`` seconds (or half the poll interval, when shorter):
  the spec in it never changes, and its state is read only to skip the messages of a job
  already ended. An aborted or canceled job's workers stop taking its mini-batches within
  that time, little next to the poll interval the orchestrator takes to abort it; a
  mini-batch already final is never scored again whatever the cache says (its row
  decides).
- A job's spec, validated once.
- Manifest pages, whole: one message names a byte range of a page (the lines of one or
  more mini-batches), and the next messages a worker takes are mostly from the same page.
  A page is written again only when a partitioning call is retried after writing it; it
  then holds the same mini-batches, listed again from the same continuation.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from batchfx.core.packing import ManifestLine, parse_manifest_line
from batchfx.core.records import JobRecord, ManifestRef
from batchfx.core.settings import Settings
from batchfx.core.spec import JobSpec
from batchfx.services.jobs import get_job
from batchfx.storage import Storage

__all__ = ["JOB_CACHE_S", "MANIFEST_CACHE_BYTES", "cached_job", "clear", "job_spec",
           "manifest_lines"]

JOB_CACHE_S = 1.0
MANIFEST_CACHE_BYTES = 32 * 1024 * 1024

_lock = threading.Lock()
# Keyed by the app's settings too: a test process talks to several Azurites.
_jobs: dict[tuple[Settings, str], tuple[float, JobRecord]] = {}
_pages: OrderedDict[tuple[Settings, str, str], bytes] = OrderedDict()
_specs: dict[str, JobSpec] = {}


def cached_job(storage: Storage, job_id: str) -> JobRecord:
    """The job's record, read again once it is ``JOB_CACHE_S`` old, or half the poll
    interval (JobNotFoundError as ``get_job``; a job not found is not cached)."""
    now, key = time.monotonic(), (storage.settings, job_id)
    max_age = min(JOB_CACHE_S, storage.settings.poll_interval_s / 2)
    with _lock:
        hit = _jobs.get(key)
    if hit is not None and now - hit[0] < max_age:
        return hit[1]
    job = get_job(storage, job_id)
    with _lock:
        if len(_jobs) > 256:
            _jobs.clear()
        _jobs[key] = (now, job)
    return job


def job_spec(job: JobRecord) -> JobSpec:
    """The job's spec, validated once per process (a job's spec never changes)."""
    with _lock:
        spec = _specs.get(job.job_id)
    if spec is None:
        spec = JobSpec.from_record(job.spec)
        with _lock:
            if len(_specs) > 256:
                _specs.clear()
            _specs[job.job_id] = spec
    return spec


def manifest_lines(storage: Storage, ref: ManifestRef) -> list[tuple[ManifestLine, ManifestRef]]:
    """The manifest lines a message names (one per mini-batch, with each one's own range),
    from their page (downloaded once per process)."""
    key = (storage.settings, storage.settings.jobs_container, ref.blob)
    with _lock:
        page = _pages.get(key)
        if page is not None:
            _pages.move_to_end(key)
    if page is None or len(page) < ref.offset + ref.length:
        page = storage.blobs.download(storage.settings.jobs_container, ref.blob)
        with _lock:
            _pages[key] = page
            total = sum(len(p) for p in _pages.values())
            while total > MANIFEST_CACHE_BYTES and len(_pages) > 1:
                total -= len(_pages.popitem(last=False)[1])
    found = []
    start, end = ref.offset, ref.offset + ref.length
    while start < end:
        stop = page.find(b"\n", start, end)
        stop = end if stop < 0 else stop + 1
        found.append((parse_manifest_line(page[start:stop]),
                      ManifestRef(ref.blob, start, stop - start)))
        start = stop
    return found


def clear() -> None:
    """Forget everything (tests)."""
    with _lock:
        _jobs.clear()
        _pages.clear()
        _specs.clear()
