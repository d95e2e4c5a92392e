"""Classifying inbox blobs, reading job files, and the ids that make drops idempotent."""

from __future__ import annotations

import pytest

from batchfx.core.errors import SpecError
from batchfx.services.blob_drops import (
    EVENT_SUBJECT_SUFFIXES,
    DropKind,
    DropRecord,
    DropState,
    classify,
    drop_request_id,
    etag_from_properties,
    parse_job_file,
)


@pytest.mark.parametrize(("blob", "inputs"), [
    ("inbox/digits/2026-11-22/_SUCCESS", "inbox/digits/2026-11-22"),
    ("inbox/digits/2026/11/22/_SUCCESS", "inbox/digits/2026/11/22"),
    ("inbox/scoring-v2/run_1/_SUCCESS", "inbox/scoring-v2/run_1"),
])
def test_a_success_marker_completes_its_folder(blob: str, inputs: str) -> None:
    drop = classify(blob, "inbox")
    assert drop.kind is DropKind.SUCCESS_MARKER
    assert drop.inputs == inputs
    assert drop.deployment == blob.split("/")[1]


@pytest.mark.parametrize("blob", [
    "inbox/digits/nightly.job.yml",
    "inbox/digits/nightly.job.yaml",
    "inbox/digits/nightly.job.json",
])
def test_a_job_file_directly_under_the_deployment_is_a_job_file(blob: str) -> None:
    drop = classify(blob, "inbox")
    assert drop.kind is DropKind.JOB_FILE
    assert drop.deployment == "digits"
    assert drop.inputs == ""


@pytest.mark.parametrize("blob", [
    "inbox/digits/2026-11-22/part-0001.csv",
    "inbox/digits/2026-11-22/_committed_123",
    "inbox/digits/2026-11-22/.part-0001.crc",
    "inbox/digits/2026-11-22/job.yml",
    "inbox/digits/readme.txt",
    "inbox/Not_A_Deployment/data.csv",
    "inbox/digits/2026-11-22/",
])
def test_data_files_and_other_markers_are_ignored(blob: str) -> None:
    assert classify(blob, "inbox").kind is DropKind.IGNORED


@pytest.mark.parametrize(("blob", "reason"), [
    ("inbox/digits/../other/_SUCCESS", "'..'"),
    ("inbox/digits/./2026/_SUCCESS", "'.'"),
    ("inbox/digits//_SUCCESS", "empty"),
    ("inbox\\digits\\2026\\_SUCCESS", "backslashes"),
    ("inbox/digits/2026\\x/_SUCCESS", "backslashes"),
    ("inbox/Digits/2026/_SUCCESS", "names the deployment; deployment: got 'Digits' — "),
    ("inbox/d/2026/_SUCCESS", "deployment: got 'd' — expected 3 to 32"),
    ("inbox/digits-/nightly.job.yml", "deployment: got 'digits-'"),
    ("inbox/digits/_SUCCESS", "completes a folder"),
    ("inbox/digits/2026/nightly.job.yml", "directly under the deployment"),
    ("inbox/digits/.job.json", "needs a name"),
    ("other/digits/2026/_SUCCESS", "not in the inbox container"),
])
def test_bad_drop_names_are_rejected_with_a_reason(blob: str, reason: str) -> None:
    drop = classify(blob, "inbox")
    assert drop.kind is DropKind.REJECTED
    assert reason in drop.reason


def test_the_inbox_container_comes_from_the_caller() -> None:
    assert classify("drops/digits/a/_SUCCESS", "drops").inputs == "drops/digits/a"


def test_every_triggering_name_ends_with_an_event_subject_suffix() -> None:
    for blob in ("inbox/digits/a/_SUCCESS", "inbox/digits/n.job.yml",
                 "inbox/digits/n.job.yaml", "inbox/digits/n.job.json"):
        assert blob.endswith(EVENT_SUBJECT_SUFFIXES)
    assert not "inbox/digits/a/data_SUCCESS".endswith(EVENT_SUBJECT_SUFFIXES)


def test_a_yaml_job_file_is_read_as_a_mapping() -> None:
    doc = parse_job_file("inbox/d/n.job.yml", b"inputs: inbox/d/x\nparameters:\n  day: 1\n")
    assert doc == {"inputs": "inbox/d/x", "parameters": {"day": 1}}


def test_a_json_job_file_is_read_as_json() -> None:
    assert parse_job_file("inbox/d/n.job.json", b'{"output": "out/x"}') == {"output": "out/x"}


@pytest.mark.parametrize(("name", "data", "message"), [
    ("inbox/d/n.job.json", b"{not json", "invalid JSON"),
    ("inbox/d/n.job.yml", b"a: [1, 2", "invalid YAML"),
    ("inbox/d/n.job.yml", b"- just\n- a list\n", "expected a mapping"),
    ("inbox/d/n.job.yml", b"", "expected a mapping"),
    ("inbox/d/n.job.yml", b"\xff\xfe", "not UTF-8"),
    ("inbox/d/n.job.yml", b"x" * (256 * 1024 + 1), "at most"),
])
def test_a_bad_job_file_is_a_spec_error_naming_the_file(name: str, data: bytes,
                                                        message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_job_file(name, data)
    assert message in caught.value.problems[0]
    assert caught.value.problems[0].startswith(name)


def test_the_request_id_ignores_etag_quoting() -> None:
    assert drop_request_id("inbox/d/a/_SUCCESS", '"0x8D1"') == \
        drop_request_id("inbox/d/a/_SUCCESS", "0x8D1") == "drop:inbox/d/a/_SUCCESS:0x8D1"


def test_a_new_etag_is_a_new_request() -> None:
    assert drop_request_id("inbox/d/a/_SUCCESS", "0x1") != \
        drop_request_id("inbox/d/a/_SUCCESS", "0x2")


@pytest.mark.parametrize(("properties", "etag"), [
    ({"ETag": '"0x8D1"', "ContentLength": 0}, '"0x8D1"'),
    ({"Etag": "0x8D2"}, "0x8D2"),
    ({"ETag": {}}, ""),
    ({"ETag": '""'}, ""),
    ({}, ""),
    (None, ""),
])
def test_the_etag_is_read_from_the_trigger_properties_when_there(
        properties: dict[str, object] | None, etag: str) -> None:
    assert etag_from_properties(properties) == etag


def test_a_drop_record_reads_back_from_its_table_row() -> None:
    record = DropRecord("inbox/d/a/_SUCCESS", '"0x1"', DropState.REJECTED,
                        "2026-11-22T00:00:00.000+00:00", "success-marker", "d",
                        reason="no deployment named 'd'")
    entity = record.to_entity()
    assert (entity["PartitionKey"], entity["RowKey"]) == ("drop", record.key)
    assert DropRecord.from_entity(entity) == record


def test_a_drop_record_is_keyed_by_blob_and_etag() -> None:
    def key(blob: str, etag: str) -> str:
        return DropRecord(blob, etag, DropState.SUBMITTED, "").key
    assert key("inbox/d/a/_SUCCESS", '"0x1"') == key("inbox/d/a/_SUCCESS", "0x1")
    assert key("inbox/d/a/_SUCCESS", "0x1") != key("inbox/d/a/_SUCCESS", "0x2")
    assert key("inbox/d/a/_SUCCESS", "0x1") != key("inbox/d/b/_SUCCESS", "0x1")
    assert "/" not in key("inbox/d/a/_SUCCESS", "0x1")


def test_a_dropped_job_file_of_nested_aliases_is_refused_quickly() -> None:
    bomb = 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n' + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10))
    with pytest.raises(SpecError, match="aliases expand to more than 100,000 values"):
        parse_job_file("inbox/d/bomb.job.yml", bomb.encode())
