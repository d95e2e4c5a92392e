"""Partitioning a job's inputs into mini-batches: list page by page, write manifests, enqueue."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time

from batchfx.core.errors import InputError, JobStateError
from batchfx.core.packing import (
    PER_PAGE,
    Packer,
    build_manifest_page,
    key_group,
    pack_files,
    select_files,
)
from batchfx.core.records import JobRecord, JobState
from batchfx.core.spec import InputSpec, JobSpec, split_source_path
from batchfx.services.job_transitions import (
    end_job,
    keep_reuse_key,
    reuse_earlier,
    save_page,
    start_partitioning,
)
from batchfx.services.jobs import get_job
from batchfx.services.manifest_pages import (
    Deadline,
    PartitionResult,
    finish_input,
    finish_partitioning,
    manifest_blob,
    partition_result,
    send_page,
    state_blob,
)
from batchfx.services.reuse import find_reusable, reuse_key
from batchfx.storage import BlobRef, Storage

__all__ = ["Deadline", "PartitionResult", "finish_partitioning", "manifest_blob",
           "partition_job", "partition_result", "send_page", "state_blob"]

logger = logging.getLogger(__name__)


def partition_job(storage: Storage, job_id: str, *, budget_s: float = 30.0,
                  mini_batches_per_page: int = PER_PAGE,
                  max_mini_batches: int | None = None) -> PartitionResult:
    """Turn listing pages into mini-batches until the listing ends, ``budget_s`` is spent
    or about ``max_mini_batches`` were queued by this call (whole pages: it may pass it).

    Progress (continuation token, totals) is saved after each page, so a repeated call
    resumes after the last saved page. A mini-batch never spans two listing pages.
    Tabular inputs also save a cursor inside a listing page, so one huge file is cut over
    as many calls as it takes (``mini_batches_per_page`` per manifest page).
    Inputs that cannot be partitioned as the spec says fail the job with the reason.
    """
    job = get_job(storage, job_id)
    if job.partitioned or job.state.is_final:
        return PartitionResult(True, job.mini_batches_total, job.items_total)
    if job.state is JobState.QUEUED:
        try:
            job = start_partitioning(storage, job_id)
        except JobStateError:  # canceled between the read and the write
            return PartitionResult(True, job.mini_batches_total, job.items_total)
    spec = JobSpec.from_record(job.spec)
    index = job.partitioning.input_index
    source = spec.input_list[index]  # several inputs are partitioned in turn
    container, prefix = split_source_path(f"{spec.input_field(index)}.path", source.path)
    try:
        single = _tabular_file(storage, source, container, prefix)
        if spec.allow_reuse and not job.reuse.key:
            reused = _check_reuse(storage, job, spec, single)
            if reused is not None:
                return reused
            job = get_job(storage, job_id)
        deadline = Deadline(time.monotonic() + budget_s, job.mini_batches_total
                             + (max_mini_batches if max_mini_batches is not None else 1 << 62))
        if source.type == "tabular":
            # Imported here, not for a cycle: numpy (and pyarrow) load for tabular jobs only,
            # not in every process that loads the app.
            from batchfx.services.partitioner_tabular import partition_tabular

            return partition_tabular(storage, job, spec, source, container, prefix, single,
                                     deadline, mini_batches_per_page)
        return _partition_files(storage, job, spec, source, container, prefix, deadline,
                                _page_size(spec, max_mini_batches))
    except InputError as exc:
        return _fail(storage, job, str(exc))


def _partition_files(storage: Storage, job: JobRecord, spec: JobSpec, source: InputSpec,
                     container: str, prefix: str, deadline: Deadline,
                     page_size: int) -> PartitionResult:
    if source.type == "uri_file":
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        job = _write_page(storage, job, spec, source, container, folder,
                          [BlobRef(prefix, 0, "")], None)
        return finish_input(storage, job, spec)
    list_prefix = f"{prefix}/" if prefix else ""
    pages = storage.files(container).list_pages(container, list_prefix,
                                     continuation=job.continuation or None,
                                     page_size=page_size)
    for refs, token in pages:
        job = _write_page(storage, job, spec, source, container, prefix, refs, token)
        if job.state.is_final:
            return PartitionResult(True, job.mini_batches_total, job.items_total)
        if not token:
            break
        if deadline.passed(job):
            return PartitionResult(False, job.mini_batches_total, job.items_total)
    return finish_input(storage, job, spec)


def _page_size(spec: JobSpec, max_mini_batches: int | None) -> int:
    """Files listed per page: 5,000 (the service's most), fewer when that many files would
    queue far more mini-batches than a call may (a mini-batch never spans two pages)."""
    count = spec.mini_batch_limit.count
    if max_mini_batches is None or count is None:
        return 5000
    return min(5000, max(100, max_mini_batches * count))


def _tabular_file(storage: Storage, source: InputSpec, container: str,
                  prefix: str) -> BlobRef | None:
    """The one blob a tabular path names, or None when the path is a folder."""
    if source.type != "tabular" or not prefix:
        return None
    for refs, _ in storage.files(container).list_pages(container, prefix, page_size=1):
        # Names sort lexically, so the exact name comes before "name.bak" or "name/...".
        return refs[0] if refs and refs[0].name == prefix else None
    return None


def _check_reuse(storage: Storage, job: JobRecord, spec: JobSpec,
                 single: BlobRef | None) -> PartitionResult | None:
    """With allow_reuse, point the job at an earlier identical job's results, if any."""
    key = reuse_key(storage, spec, list(job.submission.models))
    if single is not None:  # reuse_key lists folders; a one-file tabular path counts too
        version = single.content_md5 or single.etag
        key = hashlib.sha256(f"{key}\n{single.name}\t{version}".encode()).hexdigest()
    earlier = find_reusable(storage, key)
    try:
        if earlier is None:
            keep_reuse_key(storage, job.job_id, key)
            return None
        reuse_earlier(storage, job.job_id, key, earlier)
    except JobStateError:  # canceled meanwhile
        return PartitionResult(True, job.mini_batches_total, job.items_total)
    logger.info("job %s: same inputs, code, model and settings as job %s: reusing its results",
                job.job_id, earlier.job_id)
    return PartitionResult(True, earlier.mini_batches_total, earlier.items_total)


_Groups = list[dict[str, str]] | None


def _file_batches(spec: JobSpec, prefix: str,
                  selected: list[BlobRef]) -> tuple[list[list[BlobRef]], _Groups]:
    """Files packed into mini-batches; with partition_keys, never mixing key=value folders."""
    limit = spec.mini_batch_limit
    keys = spec.partition_keys
    if not keys:
        return list(pack_files(selected, limit)), None
    packer: Packer[BlobRef] = Packer(limit.limit)
    closed = []
    for ref in selected:
        weight = 1 if limit.count is not None else ref.size
        closed += packer.add(ref, weight, key_group(ref.name, prefix, keys))
    closed += packer.flush()
    groups = [dict(zip(keys, group, strict=True)) for group, _ in closed
              if isinstance(group, tuple)]
    return [batch for _, batch in closed], groups


def _write_page(
    storage: Storage,
    job: JobRecord,
    spec: JobSpec,
    source: InputSpec,
    container: str,
    prefix: str,
    refs: list[BlobRef],
    token: str | None,
) -> JobRecord:
    selected = list(select_files(refs, prefix, source.glob)) \
        if source.type != "uri_file" else refs
    mini_batches, groups = _file_batches(spec, prefix, selected)
    page_number = job.partitioning.pages
    first = job.mini_batches_total
    if mini_batches:
        page = build_manifest_page(container, prefix, mini_batches, first, groups,
                                   source.name if len(spec.input_list) > 1 else None)
        blob = manifest_blob(job.job_id, page_number)
        storage.blobs.upload(storage.settings.jobs_container, blob, page.body)
        send_page(storage, job.job_id, blob, page, spec)
    partitioning = dataclasses.replace(job.partitioning, pages=page_number + 1)
    # Saved only after the page's messages are out: a retried call redoes at most one
    # page, and scorers drop a duplicate message of a mini-batch already scored.
    try:
        job = save_page(storage, job.job_id, partitioning,
                        mini_batches_total=first + len(mini_batches),
                        items_total=job.items_total + sum(len(b) for b in mini_batches),
                        continuation=token or "")
    except JobStateError:  # canceled or aborted meanwhile: stop listing
        return get_job(storage, job.job_id)
    logger.info("job %s: page %d gave %d mini-batches (%d so far)", job.job_id, page_number,
                len(mini_batches), job.mini_batches_total)
    return job


def _fail(storage: Storage, job: JobRecord, reason: str) -> PartitionResult:
    """End the job as failed: its inputs cannot be partitioned as the spec says."""
    logger.error("job %s: %s", job.job_id, reason)
    try:
        job = end_job(storage, job.job_id, JobState.FAILED, reason=reason, error=reason,
                      allowed_from=[JobState.PARTITIONING, JobState.RUNNING])
    except JobStateError:
        job = get_job(storage, job.job_id)
    return partition_result(job)


