"""Helpers of the job service tests (test_jobs_*.py): inputs, specs, and what a job wrote."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from batchfx.core.packing import parse_manifest_line
from batchfx.core.records import JobRecord, ManifestRef, decode_body
from batchfx.services.scorer_cache import manifest_lines
from batchfx.storage import Storage

__all__ = ["drain_messages", "job_rows", "manifest_items", "spec_for", "upload_inputs"]


def upload_inputs(storage: Storage, container: str, sizes: list[int],
                  folder: str = "inputs") -> list[str]:
    names = [f"{folder}/f{i:05d}.txt" for i in range(len(sizes))]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda pair: storage.blobs.upload(container, pair[0], b"x" * pair[1]),
                      zip(names, sizes, strict=True)))
    return names


def spec_for(container: str, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "digits",
        "entry_script": "score.py",
        "source_directory": f"{container}/code",
        "inputs": f"{container}/inputs",
        "output": f"{container}/results",
    }
    spec.update(changes)
    return spec


def job_rows(storage: Storage) -> list[dict[str, Any]]:
    return list(storage.tables.query(storage.settings.jobs_table, JobRecord.PARTITION))


def drain_messages(storage: Storage) -> list[tuple[str, int, ManifestRef]]:
    found: list[tuple[str, int, ManifestRef]] = []
    while True:
        batch = list(storage.queues.receive(storage.settings.queue_name, visibility_timeout=300,
                                            max_messages=32))
        if not batch:
            return sorted(found, key=lambda m: m[1])
        found += [message for m in batch for message in expand(storage, m.content)]


def manifest_items(storage: Storage, ref: ManifestRef) -> list[str]:
    body = storage.blobs.download(storage.settings.jobs_container, ref.blob, offset=ref.offset,
                                  length=ref.length)
    return [item.name for item in parse_manifest_line(body).items]


def expand(storage: Storage, text: str) -> list[tuple[str, int, ManifestRef]]:
    """A message's mini-batches: (job id, index, the range of its manifest line)."""
    body = decode_body(text)
    return [(body.job_id, line.index, ref) for line, ref in manifest_lines(storage, body.ref)]
