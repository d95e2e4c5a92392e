"""A job row's typed details and their ``extra`` JSON column (batchfx.core.job_details):
rows written before the details were typed read back, and are written back alike."""

from __future__ import annotations

import json
from typing import Any

from batchfx.core.job_details import Outcome, Partitioning, Reuse, Submission
from batchfx.core.models import JobModel
from batchfx.core.records import JobRecord, JobState

# Rows as the version with ``JobRecord.extra: dict[str, Any]`` wrote them (its to_entity,
# verbatim): a tabular job mid-run, on its second input, and a job that reused its results.
_RUNNING_EXTRA = (
    r'{"tags":{"schedule":"nightly"},"pins":{"source_directory":"3f2a9c"},"models":[{"name":'
    r'"clf","version":2,"path":"models/clf/v2","asset":"model","registered":true}],'
    r'"reuse_key":"9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e",'
    r'"pages":3,"items_estimated":false,"cursor":{"name":"sales/2026-02.csv","at":'
    r'{"offset":1048576,"row":52000}},"input":1,"input_pages":2}'
)
_ENDED_EXTRA = (
    r'{"reuse_key":"9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e9d5e",'
    r'"reused_from":"sales-20260301t101500-0a1b2c","items_estimated":true,"outputs_ready":'
    r'true,"final":{"state":"completed","mini_batches":{"total":12,"succeeded":12,"failed":0},'
    r'"rows_written":120000},"metrics":{"metrics":{"accuracy":{"last":0.93,"count":12}},'
    '"tags":{}},"reports_error":"UnicodeEncodeError: \'utf-8\' codec can\'t encode"}'
)


def _old_row(state: str, extra: str, **columns: Any) -> dict[str, Any]:
    return {"name": "sales", "state": state, "created": "2026-03-01T10:15:00.123+00:00",
            "output_container": "results", "output_prefix": "outputs/sales-20260301t101500-0a1b2c",
            "client_request_id": "", "started": "2026-03-01T10:15:02.456+00:00", "ended": "",
            "items_total": 120000, "mini_batches_total": 12, "partitioned": False,
            "continuation": "", "reason": "", "error": "", "spec": '{"name":"sales"}',
            "extra": extra, "PartitionKey": "job", "RowKey": "sales-20260301t101500-0a1b2c",
            **columns}


def test_a_running_jobs_row_of_the_untyped_version_reads_as_typed_details() -> None:
    job = JobRecord.from_entity(_old_row("running", _RUNNING_EXTRA, continuation="2!84!MDAw"))
    assert job.submission == Submission(
        tags={"schedule": "nightly"}, pins={"source_directory": "3f2a9c"},
        models=(JobModel("clf", 2, "models/clf/v2", "model", registered=True),))
    assert job.partitioning == Partitioning(
        pages=3, input_index=1, input_first_page=2, items_estimated=False,
        cursor={"name": "sales/2026-02.csv", "at": {"offset": 1048576, "row": 52000}})
    assert job.reuse == Reuse(key="9d5e" * 16)
    assert job.outcome == Outcome()
    assert job.unknown_extra == {}


def test_an_ended_jobs_row_of_the_untyped_version_reads_as_typed_details() -> None:
    job = JobRecord.from_entity(_old_row("completed", _ENDED_EXTRA, partitioned=True))
    assert job.reuse == Reuse(key="9d5e" * 16, reused_from="sales-20260301t101500-0a1b2c")
    assert job.partitioning == Partitioning(items_estimated=True)
    assert job.outcome.outputs_ready is True
    assert job.outcome.final is not None and job.outcome.final["rows_written"] == 120000
    assert job.outcome.metrics == {"metrics": {"accuracy": {"last": 0.93, "count": 12}},
                                   "tags": {}}
    assert job.outcome.reports_error.startswith("UnicodeEncodeError:")


def test_a_row_of_the_untyped_version_is_written_back_with_the_same_columns_and_keys() -> None:
    for state, extra in (("running", _RUNNING_EXTRA), ("completed", _ENDED_EXTRA)):
        old = _old_row(state, extra)
        job = JobRecord.from_entity(old)
        new = job.to_entity()
        assert {k: v for k, v in new.items() if k != "extra"} == {
            k: v for k, v in old.items() if k != "extra"}
        # The same keys and values; a false flag is left out, as if never set (the untyped
        # version read every key with .get and bool()).
        assert json.loads(new["extra"]) == {k: v for k, v in json.loads(extra).items()
                                            if v is not False}
        assert JobRecord.from_entity(new) == job


def test_counts_kept_by_versions_before_the_final_tally_read_as_the_final_counts() -> None:
    counts = {"state": "failed", "mini_batches": {"total": 2, "succeeded": 1, "failed": 1}}
    job = JobRecord.from_entity(_old_row("failed", json.dumps({"counts": counts})))
    assert job.outcome.final == counts
    assert json.loads(job.to_entity()["extra"]) == {"final": counts}


def test_keys_this_version_does_not_know_are_written_back_unchanged() -> None:
    extra = {"pages": 1, "from_a_newer_version": {"x": [1, 2]}}
    job = JobRecord.from_entity(_old_row("running", json.dumps(extra)))
    assert job.partitioning.pages == 1
    assert json.loads(job.to_entity()["extra"]) == extra


def test_a_job_with_nothing_beside_its_columns_writes_an_empty_object() -> None:
    job = JobRecord("j", "n", JobState.QUEUED, {}, "2026-01-01T00:00:00", "c", "p")
    assert job.to_entity()["extra"] == "{}"
    assert JobRecord.from_entity({**job.to_entity(), "extra": None}) == job


def test_submitted_models_read_from_their_records() -> None:
    first, second = JobModel("a", 1, "c/a", "a"), JobModel("b", 3, "c/b", "b.pkl", True)
    extra = {"models": [first.to_record(), second.to_record()], "pins": {}}
    assert Submission.from_extra(extra).models == (first, second)
    assert Submission.from_extra({}).models == ()
