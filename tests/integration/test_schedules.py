"""Schedules in Table storage and firing them, against a real Azurite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from app_settings import app_settings

from batchfx.core.errors import ConflictError
from batchfx.core.pipelines import parse_pipeline
from batchfx.core.records import JobRecord
from batchfx.core.recurrence import ScheduleError
from batchfx.services.jobs import get_job, list_jobs, submit_job_once
from batchfx.services.registry import delete_pipeline, publish_pipeline
from batchfx.services.schedules import (
    ScheduleExistsError,
    ScheduleNotFoundError,
    create_schedule,
    delete_schedule,
    fire_due_schedules,
    fire_schedule,
    get_schedule,
    list_schedules,
    record_fired,
    schedule_view,
    set_enabled,
)
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # due times are whole minutes
DAY = timedelta(days=1)


@pytest.fixture
def storage(connection_string: str, unique_name: str, tmp_path: Path) -> Storage:
    store = Storage.from_settings(app_settings(connection_string, unique_name, tmp_path))
    store.ensure_resources()
    return store


@pytest.fixture
def data(storage: Storage) -> str:
    """The app's container with ``code/score.py`` and inputs under ``in/<yyyy>/<mm>/<dd>``."""
    container = storage.settings.jobs_container
    storage.blobs.upload(container, "code/score.py", b"def run(b):\n    return b\n")
    for day in range(-4, 2):
        folder = (NOW + day * DAY).strftime("%Y/%m/%d")
        storage.blobs.upload(container, f"in/{folder}/a.txt", b"a")
    return container


def daily(name: str, container: str, **changes: Any) -> dict[str, Any]:
    job = {"entry_script": "score.py", "source_directory": f"{container}/code",
           "inputs": f"{container}/in/{{date-1d:%Y/%m/%d}}", "output": f"{container}-out/nightly"}
    return {"name": name, "target": {"job": job}, "recurrence": {"frequency": "Day"},
            **changes}


def publish(storage: Storage, container: str, name: str = "nightly-pipe") -> None:
    """A job-template pipeline scoring ``in/${{parameters.day}}``."""
    job = {"entry_script": "score.py", "source_directory": f"{container}/code",
           "inputs": f"{container}/in/${{{{parameters.day}}}}",
           "output": f"{container}-out/pipe"}
    publish_pipeline(storage, parse_pipeline({"name": name, "job": job,
                                              "parameters": {"day": {"type": "string"}}}))


def on_pipeline(name: str, pipeline: str = "nightly-pipe", **target: Any) -> dict[str, Any]:
    return {"name": name, "target": {"pipeline": pipeline, **target},
            "recurrence": {"frequency": "Day"}, "parameters": {"day": "{date-1d:%Y/%m/%d}"}}


class Starter:
    """Submits like ``start_job`` (idempotent on the request id), without an orchestrator."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.calls: list[str] = []

    async def __call__(self, spec: dict[str, Any], *, client_request_id: str,
                       tags: dict[str, str]) -> tuple[JobRecord, bool]:
        self.calls.append(client_request_id)
        return submit_job_once(self.storage, spec, client_request_id=client_request_id,
                               tags=tags)


def fire(storage: Storage, now: datetime = NOW) -> list[Any]:
    return asyncio.run(fire_due_schedules(storage, now, Starter(storage)))


def test_create_stores_the_schedule_with_its_start_time(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data), now=NOW)
    record = get_schedule(storage, "nightly")
    assert (record.schedule.start_time, record.enabled, record.last_due) == (NOW, True, None)


def test_create_refuses_a_name_in_use(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data))
    with pytest.raises(ScheduleExistsError, match="'nightly' exists already — delete it"):
        create_schedule(storage, daily("nightly", data))


def test_create_refuses_an_invalid_schedule_and_stores_nothing(storage: Storage,
                                                                data: str) -> None:
    with pytest.raises(ScheduleError):
        create_schedule(storage, daily("nightly", data, cron="0 2 * * *"))
    assert list_schedules(storage) == []


def test_create_refuses_a_pipeline_that_is_not_published(storage: Storage) -> None:
    with pytest.raises(ScheduleError) as info:
        create_schedule(storage, on_pipeline("nightly", "nope"))
    [problem] = info.value.problems
    assert problem.startswith("target (pipeline 'nope'): no pipeline named 'nope'")


def test_create_refuses_what_the_pipeline_target_does_not_take(storage: Storage,
                                                               data: str) -> None:
    publish(storage, data)
    with pytest.raises(ScheduleError) as info:
        create_schedule(storage, on_pipeline("nightly", inputs="x/y"))
    assert info.value.problems == ["target (pipeline 'nightly-pipe'): inputs: unknown field of "
                                   "a pipeline target — allowed: pipeline, version, parameters"]


def test_list_gives_every_schedule_by_name(storage: Storage, data: str) -> None:
    for name in ("zeta", "alpha", "mid"):
        create_schedule(storage, daily(name, data))
    assert [r.name for r in list_schedules(storage)] == ["alpha", "mid", "zeta"]


def test_get_of_an_unknown_name_says_so(storage: Storage) -> None:
    with pytest.raises(ScheduleNotFoundError, match="no schedule named 'nope'"):
        get_schedule(storage, "nope")


def test_disable_and_enable(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data))
    assert not set_enabled(storage, "nightly", False).enabled
    assert get_schedule(storage, "nightly").enabled is False
    assert set_enabled(storage, "nightly", True).enabled


def test_delete_removes_it_and_the_name_can_be_used_again(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data))
    delete_schedule(storage, "nightly")
    with pytest.raises(ScheduleNotFoundError):
        get_schedule(storage, "nightly")
    assert list_schedules(storage) == []
    create_schedule(storage, daily("nightly", data, description="again"))
    assert get_schedule(storage, "nightly").schedule.description == "again"


def test_delete_of_an_unknown_name_says_so(storage: Storage) -> None:
    with pytest.raises(ScheduleNotFoundError):
        delete_schedule(storage, "nope")


def test_record_fired_with_a_stale_etag_loses(storage: Storage, data: str) -> None:
    stale = create_schedule(storage, daily("nightly", data))
    record_fired(storage, "nightly", NOW, "job-1", stale.etag)
    with pytest.raises(ConflictError):
        record_fired(storage, "nightly", NOW + DAY, "job-2", stale.etag)
    assert get_schedule(storage, "nightly").last_job_id == "job-1"


def test_firing_starts_one_job_on_the_due_dates_partition(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data), now=NOW)
    [firing] = fire(storage, NOW + timedelta(minutes=1))
    job = get_job(storage, firing.job_id)
    assert job.spec["inputs"]["path"] == f"{data}/in/{(NOW - DAY).strftime('%Y/%m/%d')}"
    assert job.submission.tags == {"schedule": "nightly", "due": NOW.isoformat()}
    assert get_schedule(storage, "nightly").last_due == NOW


def test_a_pipeline_schedule_assigns_parameters_from_the_due_time(storage: Storage,
                                                                  data: str) -> None:
    publish(storage, data)
    create_schedule(storage, on_pipeline("nightly"), now=NOW)
    [firing] = fire(storage)
    job = get_job(storage, firing.job_id)
    assert job.spec["inputs"]["path"] == f"{data}/in/{(NOW - DAY).strftime('%Y/%m/%d')}"


def test_a_deleted_pipeline_is_recorded_and_the_others_still_fire(storage: Storage,
                                                                  data: str) -> None:
    publish(storage, data)
    create_schedule(storage, on_pipeline("orphan"), now=NOW)
    create_schedule(storage, daily("nightly", data), now=NOW)
    delete_pipeline(storage, "nightly-pipe")
    firings = {f.schedule: f for f in fire(storage)}
    assert "NotRegisteredError: pipeline 'nightly-pipe' was deleted" in firings["orphan"].error
    assert get_schedule(storage, "orphan").last_error == firings["orphan"].error
    assert firings["nightly"].job_id


def test_firing_again_for_the_same_due_time_starts_nothing(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data), now=NOW)
    fire(storage)
    assert fire(storage) == []
    assert len(list_jobs(storage)) == 1


def test_missed_windows_are_caught_up_with_one_job(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data), now=NOW - 3 * DAY)
    [firing] = fire(storage)
    assert firing.due == NOW
    assert len(list_jobs(storage)) == 1


def test_two_runs_racing_for_one_due_time_start_one_job(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data), now=NOW)
    stale = get_schedule(storage, "nightly")
    first = asyncio.run(fire_schedule(storage, stale, NOW, Starter(storage)))
    # The second run read the row before the first recorded its firing.
    second = asyncio.run(fire_schedule(storage, stale, NOW, Starter(storage)))
    assert first is not None and second is not None
    assert (second.job_id, second.created) == (first.job_id, False)
    assert len(list_jobs(storage)) == 1


def test_a_refused_target_is_recorded_and_the_others_still_fire(storage: Storage,
                                                                 data: str) -> None:
    broken = daily("broken", data)
    broken["target"]["job"]["source_directory"] = f"{data}/missing"
    create_schedule(storage, broken, now=NOW)
    create_schedule(storage, daily("nightly", data), now=NOW)
    firings = {f.schedule: f for f in fire(storage)}
    assert "entry_script: 'score.py' not found" in firings["broken"].error
    assert firings["nightly"].job_id
    record = get_schedule(storage, "broken")
    assert "entry_script" in record.last_error
    assert record.last_due == NOW  # skipped, not tried again every minute


def test_a_failure_to_start_is_recorded_and_tried_again(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data), now=NOW)

    async def unreachable(spec: dict[str, Any], *, client_request_id: str,
                          tags: dict[str, str]) -> tuple[JobRecord, bool]:
        raise ConnectionError("durable host unreachable")

    asyncio.run(fire_due_schedules(storage, NOW, unreachable))
    record = get_schedule(storage, "nightly")
    assert "ConnectionError: durable host unreachable" in record.last_error
    assert record.last_due is None
    [firing] = fire(storage)
    assert firing.job_id and get_schedule(storage, "nightly").last_error == ""


def test_a_disabled_schedule_does_not_fire(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data, enabled=False), now=NOW)
    assert fire(storage) == []
    assert list_jobs(storage) == []


def test_enabling_does_not_make_up_windows_missed_while_disabled(storage: Storage,
                                                                 data: str) -> None:
    create_schedule(storage, daily("nightly", data, enabled=False), now=NOW - 3 * DAY)
    set_enabled(storage, "nightly", True, now=NOW - timedelta(hours=1))
    assert fire(storage, NOW - timedelta(minutes=1)) == []
    [firing] = fire(storage)  # the next due time after enabling
    assert firing.due == NOW


def test_view_shows_next_due_and_last_job(storage: Storage, data: str) -> None:
    create_schedule(storage, daily("nightly", data), now=NOW)
    [firing] = fire(storage)
    view = schedule_view(get_schedule(storage, "nightly"), NOW + timedelta(minutes=1),
                         get_job(storage, firing.job_id))
    assert view["next_due"] == (NOW + DAY).isoformat()
    assert view["last_job"]["id"] == firing.job_id
    assert view["last_due"] == NOW.isoformat()
