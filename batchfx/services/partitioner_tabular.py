"""Partitioning tabular inputs: cut files into row slices page by page, where a page may
end inside a file (its cursor saved), write the page's state, manifest and messages."""

from __future__ import annotations

import dataclasses
import json
import logging
from contextlib import closing
from typing import Any

from batchfx.core.errors import JobStateError
from batchfx.core.packing import layout_manifest_page
from batchfx.core.records import JobRecord, ManifestRef, encode_message
from batchfx.core.spec import InputSpec, JobSpec
from batchfx.services.job_transitions import save_page
from batchfx.services.jobs import get_job
from batchfx.services.manifest_pages import (
    Deadline,
    PartitionResult,
    finish_input,
    manifest_blob,
    partition_result,
    send_page,
    state_blob,
)
from batchfx.storage import BlobRef, Storage
from batchfx.tabular.planning import PlannedPage, TabularInputs, line_body, plan_pages

__all__ = ["partition_tabular"]

logger = logging.getLogger(__name__)


def partition_tabular(storage: Storage, job: JobRecord, spec: JobSpec, source: InputSpec,
                      container: str, prefix: str, single: BlobRef | None, deadline: Deadline,
                      per_page: int) -> PartitionResult:
    """Cut a tabular input page by page; a page may end inside a file (see planning)."""
    assert source.format is not None
    folder = prefix.rsplit("/", 1)[0] if single is not None and "/" in prefix else ""
    inputs = TabularInputs(storage.files(container), container, folder if single else prefix,
                           source.format, spec.mini_batch_limit,
                           tuple(spec.partition_keys or ()), source.glob, single)
    job = _recover_page(storage, job)
    if job.state.is_final or not _more(job):
        if job.state.is_final:
            return partition_result(job)
        return finish_input(storage, job, spec)
    cursor = job.partitioning.cursor
    with closing(plan_pages(inputs, job.continuation, cursor, per_page=per_page)) as pages:
        for page in pages:
            job = _write_tabular_page(storage, job, spec, inputs, page,
                                      source.name if len(spec.input_list) > 1 else None)
            if job.state.is_final:
                return partition_result(job)
            if not _more(job):
                break
            if deadline.passed(job):
                return PartitionResult(False, job.mini_batches_total, job.items_total)
    return finish_input(storage, job, spec)


def _more(job: JobRecord) -> bool:
    """Whether listing of the input goes on after the last saved page (none saved yet for
    this input: it starts)."""
    started = job.partitioning.pages > job.partitioning.input_first_page
    return not started or bool(job.continuation or job.partitioning.cursor)


def _write_tabular_page(storage: Storage, job: JobRecord, spec: JobSpec,
                        inputs: TabularInputs, page: PlannedPage,
                        input_name: str | None) -> JobRecord:
    """Write the page's state, manifest and messages, then save the job's position.

    The state is written first: a call that stops after the manifest is written finds
    it on the next call (``_recover_page``) and sends the same messages again, so the
    byte ranges in messages already sent always match the page.
    """
    number = job.partitioning.pages
    lines = [line_body(inputs, batch) for batch in page.batches]
    if input_name:  # which of the job's several inputs
        for body, _ in lines:
            body["input"] = input_name
    layout = layout_manifest_page(lines, job.mini_batches_total)
    unknown = any(body["rows"] is None for body, _ in lines)
    state: dict[str, Any] = {
        "entries": [[e.index, e.offset, e.length] for e in layout.entries],
        "mini_batches_total": job.mini_batches_total + len(lines),
        "items_total": job.items_total + sum(rows for _, rows in lines),
        "items_estimated": job.partitioning.items_estimated or unknown,
        "continuation": page.continuation,
        "cursor": page.cursor,
    }
    container = storage.settings.jobs_container
    if lines:
        storage.blobs.upload(container, state_blob(job.job_id, number),
                             json.dumps(state).encode())
        storage.blobs.upload(container, manifest_blob(job.job_id, number), layout.body)
        send_page(storage, job.job_id, manifest_blob(job.job_id, number), layout, spec)
    return _save_position(storage, job, number, state)


def _recover_page(storage: Storage, job: JobRecord) -> JobRecord:
    """Finish a page an earlier call wrote but did not record (see _write_tabular_page)."""
    number = job.partitioning.pages
    container = storage.settings.jobs_container
    if not storage.blobs.exists(container, manifest_blob(job.job_id, number)):
        return job
    state = json.loads(storage.blobs.download(container, state_blob(job.job_id, number)))
    blob = manifest_blob(job.job_id, number)
    queue = storage.settings.queue_name
    for index, offset, length in state["entries"]:
        storage.queues.send(queue, encode_message(job.job_id, index,
                                                  ManifestRef(blob, offset, length)))
    logger.warning("job %s: page %d was written by a call that stopped; sent it again",
                   job.job_id, number)
    return _save_position(storage, job, number, state)


def _save_position(storage: Storage, job: JobRecord, number: int,
                   state: dict[str, Any]) -> JobRecord:
    partitioning = dataclasses.replace(job.partitioning, pages=number + 1,
                                       items_estimated=bool(state["items_estimated"]),
                                       cursor=state["cursor"])
    try:
        job = save_page(storage, job.job_id, partitioning,
                        mini_batches_total=int(state["mini_batches_total"]),
                        items_total=int(state["items_total"]),
                        continuation=state["continuation"])
    except JobStateError:  # canceled or aborted meanwhile: stop
        return get_job(storage, job.job_id)
    logger.info("job %s: page %d gave %d mini-batches (%d so far)", job.job_id, number,
                len(state["entries"]), job.mini_batches_total)
    return job


