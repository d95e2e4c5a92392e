"""Partitioning a job's inputs into mini-batches: list page by page, write manifests, enqueue."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from batchfx.errors import JobStateError
from batchfx.jobs import get_job, transition_job, utc_now
from batchfx.partition import build_manifest_page, pack_files, select_files
from batchfx.records import JobRecord, JobState, ManifestRef, encode_message
from batchfx.reuse import find_reusable, reuse_key
from batchfx.spec import JobSpec, split_storage_path
from batchfx.storage import BlobRef, Storage

__all__ = ["PartitionResult", "partition_job"]

logger = logging.getLogger(__name__)

_SEND_THREADS = 8


@dataclass(frozen=True)
class PartitionResult:
    """Where partitioning stands after one call."""

    done: bool
    mini_batches: int
    items: int


def _manifest_blob(job_id: str, page: int) -> str:
    return f"jobs/{job_id}/manifests/page-{page:06d}.jsonl"


def partition_job(storage: Storage, job_id: str, *, budget_s: float = 30.0) -> PartitionResult:
    """Turn listing pages into mini-batches until the listing ends or ``budget_s`` is spent.

    Progress (continuation token, totals) is saved after each page, so a repeated call
    resumes after the last saved page. A mini-batch never spans two listing pages.
    """
    job = get_job(storage, job_id)
    if job.partitioned or job.state.is_final:
        return PartitionResult(True, job.mini_batches_total, job.items_total)
    if job.state is JobState.QUEUED:
        try:
            job = transition_job(storage, job_id, JobState.PARTITIONING,
                                 allowed_from=[JobState.QUEUED], started=utc_now())
        except JobStateError:  # canceled between the read and the write
            return PartitionResult(True, job.mini_batches_total, job.items_total)
    spec = JobSpec.from_record(job.spec)
    if spec.allow_reuse and "reuse_key" not in job.extra:
        reused = _check_reuse(storage, job, spec)
        if reused is not None:
            return reused
        job = get_job(storage, job_id)
    container, prefix = split_storage_path("inputs.path", spec.inputs.path)
    deadline = time.monotonic() + budget_s
    if spec.inputs.type == "uri_file":
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        job = _write_page(storage, job, spec, container, folder, [BlobRef(prefix, 0, "")], None)
        return _finish(storage, job)
    list_prefix = f"{prefix}/" if prefix else ""
    pages = storage.blobs.list_pages(container, list_prefix,
                                     continuation=job.continuation or None)
    for refs, token in pages:
        job = _write_page(storage, job, spec, container, prefix, refs, token)
        if job.state.is_final:
            return PartitionResult(True, job.mini_batches_total, job.items_total)
        if not token:
            break
        if time.monotonic() > deadline:
            return PartitionResult(False, job.mini_batches_total, job.items_total)
    return _finish(storage, job)


def _check_reuse(storage: Storage, job: JobRecord, spec: JobSpec) -> PartitionResult | None:
    """With allow_reuse, point the job at an earlier identical job's results, if any."""
    key = reuse_key(storage, spec)
    earlier = find_reusable(storage, key)
    extra = dict(job.extra, reuse_key=key)
    try:
        if earlier is None:
            transition_job(storage, job.job_id, JobState.PARTITIONING,
                           allowed_from=[JobState.PARTITIONING], extra=extra)
            return None
        extra["reused_from"] = earlier.job_id
        transition_job(storage, job.job_id, JobState.RUNNING,
                       allowed_from=[JobState.PARTITIONING], extra=extra, partitioned=True,
                       items_total=earlier.items_total,
                       mini_batches_total=earlier.mini_batches_total)
    except JobStateError:  # canceled meanwhile
        return PartitionResult(True, job.mini_batches_total, job.items_total)
    logger.info("job %s: same inputs, code, model and settings as job %s: reusing its results",
                job.job_id, earlier.job_id)
    return PartitionResult(True, earlier.mini_batches_total, earlier.items_total)


def _write_page(
    storage: Storage,
    job: JobRecord,
    spec: JobSpec,
    container: str,
    prefix: str,
    refs: list[BlobRef],
    token: str | None,
) -> JobRecord:
    selected = list(select_files(refs, prefix, spec.inputs.glob)) \
        if spec.inputs.type != "uri_file" else refs
    mini_batches = list(pack_files(selected, spec.mini_batch_limit))
    page_number = int(job.extra.get("pages", 0))
    first = job.mini_batches_total
    if mini_batches:
        page = build_manifest_page(container, prefix, mini_batches, first)
        blob = _manifest_blob(job.job_id, page_number)
        storage.blobs.upload(storage.settings.jobs_container, blob, page.body)
        messages = [encode_message(job.job_id, e.index, ManifestRef(blob, e.offset, e.length))
                    for e in page.entries]
        queue = storage.settings.queue_name
        with ThreadPoolExecutor(_SEND_THREADS) as pool:
            list(pool.map(lambda m: storage.queues.send(queue, m), messages))
    extra = dict(job.extra, pages=page_number + 1)
    # Saved only after the page's messages are out: a retried call redoes at most one
    # page, and scorers drop a duplicate message of a mini-batch already scored.
    try:
        job = transition_job(
            storage, job.job_id,
            JobState.RUNNING if mini_batches or job.mini_batches_total else JobState.PARTITIONING,
            allowed_from=[JobState.PARTITIONING, JobState.RUNNING],
            mini_batches_total=first + len(mini_batches),
            items_total=job.items_total + sum(len(b) for b in mini_batches),
            continuation=token or "",
            extra=extra,
        )
    except JobStateError:  # canceled or aborted meanwhile: stop listing
        return get_job(storage, job.job_id)
    logger.info("job %s: page %d gave %d mini-batches (%d so far)", job.job_id, page_number,
                len(mini_batches), job.mini_batches_total)
    return job


def _finish(storage: Storage, job: JobRecord) -> PartitionResult:
    try:
        job = transition_job(storage, job.job_id, JobState.RUNNING,
                             allowed_from=[JobState.PARTITIONING, JobState.RUNNING],
                             partitioned=True)
    except JobStateError:  # ended meanwhile
        return PartitionResult(True, job.mini_batches_total, job.items_total)
    logger.info("job %s: partitioned into %d mini-batches of %d items", job.job_id,
                job.mini_batches_total, job.items_total)
    return PartitionResult(True, job.mini_batches_total, job.items_total)
