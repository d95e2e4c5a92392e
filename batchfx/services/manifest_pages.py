"""The steps every partitioning call shares, whatever the input: where a page's manifest
and state are kept, sending a page's mini-batches out as messages, when a call stops and
what it returns, and moving on to the next input once one is listed."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from batchfx.core.errors import JobStateError
from batchfx.core.packing import ManifestPage, message_groups
from batchfx.core.records import JobRecord, ManifestRef, encode_message
from batchfx.core.spec import JobSpec
from batchfx.services.job_transitions import end_partitioning, next_input
from batchfx.services.jobs import get_job
from batchfx.storage import Storage

__all__ = ["Deadline", "PartitionResult", "finish_input", "finish_partitioning",
           "manifest_blob", "partition_result", "send_page", "state_blob"]

logger = logging.getLogger(__name__)

_SEND_THREADS = 8


@dataclass(frozen=True)
class PartitionResult:
    """Where partitioning stands after one call."""

    done: bool
    mini_batches: int
    items: int


def manifest_blob(job_id: str, page: int) -> str:
    return f"jobs/{job_id}/manifests/page-{page:06d}.jsonl"


def state_blob(job_id: str, page: int) -> str:
    return f"jobs/{job_id}/manifests/page-{page:06d}.state.json"


@dataclass(frozen=True)
class Deadline:
    """When a partitioning call stops: out of time, or enough mini-batches queued."""

    at: float
    mini_batches: int

    def passed(self, job: JobRecord) -> bool:
        return time.monotonic() > self.at or job.mini_batches_total >= self.mini_batches


def send_page(storage: Storage, job_id: str, blob: str, page: ManifestPage,
              spec: JobSpec) -> None:
    """Send a page's mini-batches out, several to a message (``message_groups``)."""
    places = spec.node_count * spec.process_count_per_node * 2  # one running, one staged
    messages = [encode_message(job_id, group[0].index,
                               ManifestRef(blob, group[0].offset,
                                           group[-1].offset + group[-1].length
                                           - group[0].offset), len(group))
                for group in message_groups(page.entries, places)]
    queue = storage.settings.queue_name
    with ThreadPoolExecutor(_SEND_THREADS) as pool:
        list(pool.map(lambda m: storage.queues.send(queue, m), messages))


def partition_result(job: JobRecord) -> PartitionResult:
    return PartitionResult(True, job.mini_batches_total, job.items_total)


def finish_input(storage: Storage, job: JobRecord, spec: JobSpec) -> PartitionResult:
    """The input being partitioned is listed: the next call goes on with the next input
    (from the start of its listing), or partitioning ends after the last."""
    index = job.partitioning.input_index
    if index + 1 >= len(spec.input_list):
        return finish_partitioning(storage, job)
    partitioning = replace(job.partitioning, input_index=index + 1,
                           input_first_page=job.partitioning.pages, cursor=None)
    try:
        job = next_input(storage, job.job_id, job.state, partitioning)
    except JobStateError:  # ended meanwhile
        return partition_result(get_job(storage, job.job_id))
    logger.info("job %s: input %d of %d listed", job.job_id, index + 1, len(spec.input_list))
    return PartitionResult(False, job.mini_batches_total, job.items_total)


def finish_partitioning(storage: Storage, job: JobRecord) -> PartitionResult:
    try:
        job = end_partitioning(storage, job.job_id)
    except JobStateError:  # ended meanwhile
        return PartitionResult(True, job.mini_batches_total, job.items_total)
    logger.info("job %s: partitioned into %d mini-batches of %d items", job.job_id,
                job.mini_batches_total, job.items_total)
    return PartitionResult(True, job.mini_batches_total, job.items_total)
