"""Job and mini-batch records, their table rows, and the mini-batch queue message."""

from __future__ import annotations

import json

import pytest

from batchfx.core.job_details import Partitioning
from batchfx.core.records import (
    JobRecord,
    JobState,
    ManifestRef,
    MiniBatchRecord,
    MiniBatchStatus,
    decode_body,
    decode_message,
    encode_message,
    mini_batch_key,
)

# --- queue message -------------------------------------------------------------------------

def test_message_round_trips() -> None:
    ref = ManifestRef("jobs/j1/manifests/page-000003.jsonl", 12345, 678)
    assert decode_message(encode_message("j1", 42, ref)) == ("j1", 42, ref)


def test_message_is_compact_json_of_references_only() -> None:
    text = encode_message("j1", 1, ManifestRef("m.jsonl", 0, 10))
    assert json.loads(text) == {"job_id": "j1", "index": 1, "manifest": "m.jsonl",
                                "offset": 0, "length": 10}
    assert " " not in text


def test_message_for_long_names_stays_far_below_the_queue_limit() -> None:
    job_id = "a" * 32 + "-20250101t000000-abcdef"
    blob = f"jobs/{job_id}/manifests/page-999999.jsonl"
    text = encode_message(job_id, 9_999_999, ManifestRef(blob, 10**15, 10**9))
    # base64 on the wire grows it by a third; the queue allows 64 KiB, Functions 48 KiB.
    assert len(text.encode()) * 4 / 3 < 1024


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("not json", "not a batchfx mini-batch message"),
        ('{"index": 1, "manifest": "m", "offset": 0, "length": 1}', "job_id"),
        ('{"job_id": "j", "manifest": "m", "offset": 0, "length": 1}', "index"),
        ('{"job_id": "j", "index": 1, "offset": 0, "length": 1}', "manifest"),
        ('{"job_id": "j", "index": 1, "manifest": "m", "length": 1}', "offset"),
        ('{"job_id": "j", "index": "x", "manifest": "m", "offset": 0, "length": 1}', "'x'"),
        ("[1, 2, 3]", "not a batchfx mini-batch message"),
        ("null", "not a batchfx mini-batch message"),
    ],
)
def test_malformed_message_raises_value_error_naming_the_problem(text: str, named: str) -> None:
    with pytest.raises(ValueError, match="not a batchfx mini-batch message") as info:
        decode_message(text)
    assert named in str(info.value)


def test_malformed_message_error_quotes_the_text_cut_short() -> None:
    with pytest.raises(ValueError) as info:
        decode_message("x" * 10_000)
    assert "xxxx" in str(info.value)
    assert len(str(info.value)) < 500


# --- mini-batch rows -----------------------------------------------------------------------

def test_mini_batch_key_is_zero_padded_so_rows_sort_in_input_order() -> None:
    keys = [mini_batch_key(i) for i in (0, 2, 10, 100, 9_999)]
    assert keys == sorted(keys)
    assert mini_batch_key(42) == "0000042"


def test_mini_batch_record_round_trips_through_its_entity() -> None:
    record = MiniBatchRecord(
        job_id="j1", index=17, status=MiniBatchStatus.FAILED, items=10, tries=3, succeeded=0,
        failed=10, rows=0, worker="host:123", message_id="m1", started="2025-01-01T00:00:00",
        ended="2025-01-01T00:00:05", lease_until=1234.5, seconds=5.25, part="p",
        header="a b", error_phase="run", error_type="ValueError", error_message="bad item",
        error_traceback="Traceback...", error_try=3, manifest="jobs/j1/m.jsonl",
        manifest_offset=100, manifest_length=50,
    )
    entity = record.to_entity()
    assert (entity["PartitionKey"], entity["RowKey"], entity["status"]) == (
        "j1", "0000017", "failed")
    assert MiniBatchRecord.from_entity(entity) == record


def test_mini_batch_from_entity_ignores_unknown_columns() -> None:
    entity = MiniBatchRecord("j1", 1, MiniBatchStatus.RUNNING).to_entity()
    entity["Timestamp"] = "2025-01-01"
    assert MiniBatchRecord.from_entity(entity) == MiniBatchRecord("j1", 1, MiniBatchStatus.RUNNING)


def test_long_traceback_is_cut_keeping_its_end() -> None:
    traceback = "Traceback (most recent call last):\n" + "  frame\n" * 10_000 + "KeyError: 'x'"
    record = MiniBatchRecord("j1", 1, MiniBatchStatus.FAILED, error_traceback=traceback)
    stored = record.to_entity()["error_traceback"]
    assert len(stored) < len(traceback)
    assert len(stored.encode("utf-16-le")) < 64 * 1024  # a table property's limit
    assert stored.endswith("KeyError: 'x'")
    assert stored.startswith("…")


def test_long_error_message_is_cut_keeping_its_end() -> None:
    record = MiniBatchRecord("j1", 1, MiniBatchStatus.FAILED, error_message="m" * 50_000 + "end")
    stored = record.to_entity()["error_message"]
    assert len(stored.encode("utf-16-le")) < 64 * 1024
    assert stored.endswith("end")


def test_short_traceback_is_kept_whole() -> None:
    record = MiniBatchRecord("j1", 1, MiniBatchStatus.FAILED, error_traceback="short\ntrace")
    assert record.to_entity()["error_traceback"] == "short\ntrace"


# --- job rows ------------------------------------------------------------------------------

def _job(**changes: object) -> JobRecord:
    values: dict[str, object] = {
        "job_id": "digits-20250101t000000-abcdef",
        "name": "digits",
        "state": JobState.RUNNING,
        "spec": {"name": "digits", "inputs": {"path": "data/in", "glob": None}, "arguments": []},
        "created": "2025-01-01T00:00:00.000+00:00",
        "output_container": "results",
        "output_prefix": "digits/digits-20250101t000000-abcdef",
        "client_request_id": "req-1",
        "started": "2025-01-01T00:00:01.000+00:00",
        "items_total": 25,
        "mini_batches_total": 3,
        "partitioned": True,
        "continuation": "token",
        "reason": "",
        "error": "",
        "partitioning": Partitioning(pages=2),
    }
    values.update(changes)
    return JobRecord(**values)  # type: ignore[arg-type]


def test_job_record_round_trips_through_its_entity() -> None:
    job = _job()
    entity = job.to_entity()
    assert (entity["PartitionKey"], entity["RowKey"], entity["state"]) == (
        "job", job.job_id, "running")
    assert isinstance(entity["spec"], str) and isinstance(entity["extra"], str)
    assert JobRecord.from_entity(entity) == job


def test_job_entity_has_no_class_constant_column() -> None:
    assert "PARTITION" not in _job().to_entity()


def test_job_long_error_is_cut_keeping_its_end() -> None:
    entity = _job(error="x" * 100_000 + "the cause").to_entity()
    assert entity["error"].endswith("the cause")
    assert len(entity["error"].encode("utf-16-le")) < 64 * 1024


def test_job_output_location_joins_container_and_prefix() -> None:
    assert _job().output_location == "results/digits/digits-20250101t000000-abcdef"


# --- states --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("state", "final"),
    [
        (JobState.QUEUED, False),
        (JobState.PARTITIONING, False),
        (JobState.RUNNING, False),
        (JobState.FINALIZING, False),
        (JobState.COMPLETED, True),
        (JobState.FAILED, True),
        (JobState.ABORTED, True),
        (JobState.CANCELED, True),
    ],
)
def test_job_state_is_final_only_for_the_four_ends(state: JobState, final: bool) -> None:
    assert state.is_final is final


@pytest.mark.parametrize(
    ("status", "final"),
    [(MiniBatchStatus.RUNNING, False), (MiniBatchStatus.SUCCEEDED, True),
     (MiniBatchStatus.FAILED, True)],
)
def test_mini_batch_status_is_final_unless_running(status: MiniBatchStatus, final: bool) -> None:
    assert status.is_final is final


def test_states_are_str_enums_with_azure_ml_words() -> None:
    assert JobState("canceled") is JobState.CANCELED
    assert JobState.RUNNING == "running"


def test_a_message_of_several_mini_batches_says_how_many() -> None:
    ref = ManifestRef("jobs/j/manifests/page-000000.jsonl", 100, 900)
    body = decode_body(encode_message("j1", 16, ref, 8))
    assert (body.job_id, body.index, body.ref, body.count) == ("j1", 16, ref, 8)
    assert decode_body(encode_message("j1", 16, ref)).count == 1
    assert '"count"' not in encode_message("j1", 16, ref)  # one mini-batch: as before


def test_a_message_counting_no_mini_batch_is_malformed() -> None:
    text = encode_message("j1", 1, ManifestRef("m.jsonl", 0, 10), 0)
    with pytest.raises(ValueError, match="count 0 is not 1 or more"):
        decode_body(text)
