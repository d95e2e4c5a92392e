"""batchfx.storage's tables against a real Azurite: rows, ETags and partition queries."""

from __future__ import annotations

import pytest

from batchfx.core.errors import ConflictError
from batchfx.core.settings import Settings
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


@pytest.fixture
def table(settings: Settings) -> str:
    return settings.jobs_table


def _row(pk: str = "p1", rk: str = "r1", **values: object) -> dict[str, object]:
    return {"PartitionKey": pk, "RowKey": rk, **values}


def test_table_insert_then_get_gives_the_values_and_etag(storage: Storage, table: str) -> None:
    etag = storage.tables.insert(table, _row(state="queued", count=3, ratio=0.5, flag=True))
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None
    assert found.etag == etag
    assert {k: found.values[k] for k in ("state", "count", "ratio", "flag")} == {
        "state": "queued", "count": 3, "ratio": 0.5, "flag": True}


def test_table_get_of_a_missing_row_is_none(storage: Storage, table: str) -> None:
    assert storage.tables.get(table, "p1", "nobody") is None


def test_table_insert_of_an_existing_row_raises_conflict(storage: Storage, table: str) -> None:
    storage.tables.insert(table, _row(v=1))
    with pytest.raises(ConflictError):
        storage.tables.insert(table, _row(v=2))
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None and found.values["v"] == 1


def test_table_replace_with_the_current_etag_writes(storage: Storage, table: str) -> None:
    etag = storage.tables.insert(table, _row(state="queued", old="x"))
    new_etag = storage.tables.replace(table, _row(state="running"), etag=etag)
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None
    assert found.values["state"] == "running"
    assert "old" not in found.values  # replace, not merge
    assert found.etag == new_etag != etag


def test_table_replace_with_a_stale_etag_raises_conflict(storage: Storage, table: str) -> None:
    stale = storage.tables.insert(table, _row(state="queued"))
    storage.tables.replace(table, _row(state="running"), etag=stale)
    with pytest.raises(ConflictError):
        storage.tables.replace(table, _row(state="canceled"), etag=stale)
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None and found.values["state"] == "running"


def test_table_replace_without_etag_upserts(storage: Storage, table: str) -> None:
    storage.tables.replace(table, _row(state="new"), etag=None)
    storage.tables.replace(table, _row(state="newer"), etag=None)
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None and found.values["state"] == "newer"


def test_table_merge_updates_some_columns_and_keeps_the_rest(storage: Storage,
                                                             table: str) -> None:
    storage.tables.insert(table, _row(state="queued", items=10))
    storage.tables.merge(table, _row(state="running"))
    found = storage.tables.get(table, "p1", "r1")
    assert found is not None
    assert (found.values["state"], found.values["items"]) == ("running", 10)


def test_table_merge_with_a_stale_etag_raises_conflict(storage: Storage, table: str) -> None:
    stale = storage.tables.insert(table, _row(state="queued"))
    storage.tables.merge(table, _row(state="running"), etag=stale)
    with pytest.raises(ConflictError):
        storage.tables.merge(table, _row(state="aborted"), etag=stale)


def test_table_query_returns_only_one_partition(storage: Storage, table: str) -> None:
    for pk, rk in [("job-a", "1"), ("job-a", "2"), ("job-b", "1"), ("job-a2", "1")]:
        storage.tables.insert(table, _row(pk, rk, v=f"{pk}/{rk}"))
    rows = list(storage.tables.query(table, "job-a"))
    assert sorted(r["v"] for r in rows) == ["job-a/1", "job-a/2"]


def test_table_query_handles_a_quote_in_the_partition_key(storage: Storage, table: str) -> None:
    storage.tables.insert(table, _row("o'brien", "1", v=1))
    storage.tables.insert(table, _row("o", "1", v=2))
    assert [r["v"] for r in storage.tables.query(table, "o'brien")] == [1]


def test_table_query_selects_columns(storage: Storage, table: str) -> None:
    storage.tables.insert(table, _row(a=1, b=2))
    (row,) = storage.tables.query(table, "p1", select=["a"])
    assert row["a"] == 1
    assert "b" not in row
