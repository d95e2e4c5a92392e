"""A scoring worker's cache on Azurite: a job's record kept for a few seconds, manifest
pages downloaded once per process."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from batchfx.core.errors import JobNotFoundError
from batchfx.core.packing import build_manifest_page
from batchfx.core.records import JobRecord, JobState, ManifestRef
from batchfx.services import scorer_cache
from batchfx.services.job_transitions import transition_job
from batchfx.storage import Storage
from batchfx.storage.blobs import BlobRef


class CountingBlobs:
    """The real BlobStore, with its downloads counted."""

    def __init__(self, blobs: Any) -> None:
        self._blobs, self.downloads = blobs, 0

    def download(self, *args: Any, **kwargs: Any) -> bytes:
        self.downloads += 1
        data: bytes = self._blobs.download(*args, **kwargs)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._blobs, name)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    scorer_cache.clear()
    yield
    scorer_cache.clear()


def _job(storage: Storage, job_id: str) -> JobRecord:
    job = JobRecord(job_id, "cache", JobState.RUNNING, {}, "2026-11-23T00:00:00Z",
                    storage.settings.jobs_container, f"out/{job_id}")
    storage.tables.insert(storage.settings.jobs_table, job.to_entity())
    return job


def test_a_jobs_record_is_read_again_only_after_the_cache_time(
        storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    _job(storage, "job-cache-1")
    assert scorer_cache.cached_job(storage, "job-cache-1").state is JobState.RUNNING
    transition_job(storage, "job-cache-1", JobState.CANCELED, allowed_from=[JobState.RUNNING])
    assert scorer_cache.cached_job(storage, "job-cache-1").state is JobState.RUNNING
    monkeypatch.setattr(scorer_cache, "JOB_CACHE_S", 0.0)
    assert scorer_cache.cached_job(storage, "job-cache-1").state is JobState.CANCELED


def test_the_cache_lasts_at_most_half_the_poll_interval(storage: Storage) -> None:
    """With checks every 0.3 s (the e2e tests), a job's abort reaches workers as quickly."""
    _job(storage, "job-cache-3")
    quick = dataclasses.replace(storage, settings=dataclasses.replace(storage.settings,
                                                                      poll_interval_s=0.0))
    assert scorer_cache.cached_job(quick, "job-cache-3").state is JobState.RUNNING
    transition_job(storage, "job-cache-3", JobState.CANCELED, allowed_from=[JobState.RUNNING])
    assert scorer_cache.cached_job(quick, "job-cache-3").state is JobState.CANCELED


def test_an_unknown_job_is_not_cached(storage: Storage) -> None:
    with pytest.raises(JobNotFoundError):
        scorer_cache.cached_job(storage, "job-cache-2")
    _job(storage, "job-cache-2")
    assert scorer_cache.cached_job(storage, "job-cache-2").job_id == "job-cache-2"


def test_a_manifest_page_is_downloaded_once_for_all_its_lines(storage: Storage) -> None:
    refs = [[BlobRef(f"inputs/f{i}.txt", 1, "0x1")] for i in range(3)]
    page = build_manifest_page("data", "inputs", refs, 40)
    name = "jobs/j/manifests/page-000000.jsonl"
    storage.blobs.upload(storage.settings.jobs_container, name, page.body)
    counting = CountingBlobs(storage.blobs)
    counted = dataclasses.replace(storage, blobs=counting)
    got = [scorer_cache.manifest_lines(counted, ManifestRef(name, e.offset, e.length))[0][0]
           for e in reversed(page.entries)]
    assert [(g.index, [i.name for i in g.items]) for g in got] == [
        (42, ["inputs/f2.txt"]), (41, ["inputs/f1.txt"]), (40, ["inputs/f0.txt"])]
    assert counting.downloads == 1


def test_a_message_of_several_mini_batches_gives_each_line_with_its_own_range(
        storage: Storage) -> None:
    refs = [[BlobRef(f"inputs/f{i}.txt", 1, "0x1")] for i in range(4)]
    page = build_manifest_page("data", "inputs", refs, 0)
    name = "jobs/j/manifests/page-000001.jsonl"
    storage.blobs.upload(storage.settings.jobs_container, name, page.body)
    first, last = page.entries[1], page.entries[3]
    span = ManifestRef(name, first.offset, last.offset + last.length - first.offset)
    got = scorer_cache.manifest_lines(storage, span)
    assert [line.index for line, _ in got] == [1, 2, 3]
    assert [ref for _, ref in got] == [ManifestRef(name, e.offset, e.length)
                                       for e in page.entries[1:]]
    # each line's own range reads back that line alone
    (line, _), = scorer_cache.manifest_lines(storage, got[1][1])
    assert line.items[0].name == "inputs/f2.txt"
