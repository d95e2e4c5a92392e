"""Schedules end to end: the HTTP functions, the timer function run by the local runner's
TimerDriver, and the jobs it starts scored by the workers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from e2e_app import App, lines

from batchfx.cli.schedules import schedule as schedule_cli
from batchfx.core.errors import ScheduleNotFoundError
from batchfx.core.pipelines import parse_pipeline
from batchfx.services.registry import delete_pipeline, publish_pipeline

pytestmark = pytest.mark.azurite

TIMER = "fire_schedules"


@pytest.fixture
def sched(app: App) -> App:
    """The app with its background timer stopped: the tests fire it themselves."""
    assert app.runner is not None and app.runner.timers is not None
    app.runner.timers.stop()
    return app


def fire(app: App, *, past_due: bool = False) -> None:
    assert app.runner is not None and app.runner.timers is not None
    app.runner.timers.fire_now(TIMER, past_due=past_due)


def call(app: App, method: str, path: str, body: Any = None) -> Any:
    assert app.api is not None
    return app.api.call(method, path, body)


def http(app: App, method: str, path: str, body: Any = None
         ) -> tuple[int, dict[str, Any], dict[str, str]]:
    assert app.runner is not None
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{app.runner.url}/api/{path}", data=data, method=method,
                                     headers={"x-functions-key": app.runner.function_key})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def nightly(app: App, name: str = "nightly", **changes: Any) -> dict[str, Any]:
    """A daily schedule scoring yesterday's partition (``daily/yyyy/mm/dd``) with echo.py."""
    container = app.settings.jobs_container
    job = {"entry_script": "score.py", "source_directory": app.upload_script("echo.py"),
           "inputs": f"{container}/daily/{{date-1d:%Y/%m/%d}}",
           "output": f"{container}-out/{name}", "mini_batch_size": 2}
    return {"name": name, "target": {"job": job}, "recurrence": {"frequency": "Day"},
            **changes}


def upload_partitions(app: App, due: datetime) -> str:
    """Inputs for yesterday (of the due time), and decoys for the days around it."""
    for days, tag in ((2, "before"), (0, "today")):
        app.upload_inputs({"x.txt": tag}, f"daily/{(due - timedelta(days=days)):%Y/%m/%d}")
    yesterday = f"{(due - timedelta(days=1)):%Y/%m/%d}"
    app.upload_inputs({f"f{i}.txt": f"row {i}" for i in range(3)}, f"daily/{yesterday}")
    return f"{app.settings.jobs_container}/daily/{yesterday}"


def publish(app: App) -> None:
    """A published pipeline scoring ``daily/${{parameters.day}}`` with echo.py."""
    container = app.settings.jobs_container
    job = {"entry_script": "score.py", "source_directory": app.upload_script("echo.py"),
           "inputs": f"{container}/daily/${{{{parameters.day}}}}",
           "output": f"{container}-out/pipe", "mini_batch_size": 2}
    publish_pipeline(app.storage, parse_pipeline({
        "name": "nightly-pipe", "job": job, "parameters": {"day": {"type": "string"}}}))


def on_pipeline(name: str) -> dict[str, Any]:
    return {"name": name, "target": {"pipeline": "nightly-pipe"},
            "recurrence": {"frequency": "Day"}, "parameters": {"day": "{date-1d:%Y/%m/%d}"}}


def create(app: App, body: dict[str, Any]) -> datetime:
    """Create a schedule through the API; returns its start time (its first due time)."""
    view = call(app, "POST", "schedules", body)
    return datetime.fromisoformat(view["recurrence"]["start_time"])


def jobs(app: App) -> list[dict[str, Any]]:
    assert app.api is not None
    return app.api.list()


def test_a_daily_schedule_runs_yesterdays_partition_once(sched: App) -> None:
    due = create(sched, nightly(sched))
    partition = upload_partitions(sched, due)
    fire(sched)
    [job] = jobs(sched)
    view = sched.wait(job["id"])
    assert view["state"] == "completed"
    assert lines(sched.outputs(view)["parallel_run_step.txt"]) == [
        f"f{i}.txt row {i}" for i in range(3)]
    stored = sched.storage.tables.get(sched.settings.jobs_table, "job", job["id"])
    assert stored is not None and json.loads(stored.values["spec"])["inputs"]["path"] == partition


def test_firing_again_and_late_for_one_due_time_gives_one_job(sched: App) -> None:
    upload_partitions(sched, create(sched, nightly(sched)))
    fire(sched)
    fire(sched)
    fire(sched, past_due=True)
    [job] = jobs(sched)
    assert call(sched, "GET", "schedules/nightly")["last_job"]["id"] == job["id"]


def test_a_pipeline_schedule_runs_yesterdays_partition(sched: App) -> None:
    publish(sched)
    partition = upload_partitions(sched, create(sched, on_pipeline("pipe-nightly")))
    fire(sched)
    [job] = jobs(sched)
    view = sched.wait(job["id"])
    assert view["state"] == "completed"
    stored = sched.storage.tables.get(sched.settings.jobs_table, "job", job["id"])
    assert stored is not None and json.loads(stored.values["spec"])["inputs"]["path"] == partition


def test_a_deleted_pipeline_is_recorded_and_the_others_still_fire(sched: App) -> None:
    publish(sched)
    create(sched, on_pipeline("orphan"))
    upload_partitions(sched, create(sched, nightly(sched)))
    delete_pipeline(sched.storage, "nightly-pipe")
    fire(sched)
    assert "pipeline 'nightly-pipe' was deleted" in call(sched, "GET",
                                                         "schedules/orphan")["last_error"]
    [job] = jobs(sched)
    assert job["id"] == call(sched, "GET", "schedules/nightly")["last_job_id"]


def test_a_broken_job_target_is_recorded_and_the_others_still_fire(sched: App) -> None:
    broken = nightly(sched, "broken")
    broken["target"]["job"]["source_directory"] = f"{sched.settings.jobs_container}/gone"
    create(sched, broken)
    upload_partitions(sched, create(sched, nightly(sched)))
    fire(sched)
    assert "entry_script: 'score.py' not found" in call(sched, "GET",
                                                       "schedules/broken")["last_error"]
    [job] = jobs(sched)
    assert job["id"] == call(sched, "GET", "schedules/nightly")["last_job_id"]


def test_a_disabled_schedule_starts_no_job(sched: App) -> None:
    upload_partitions(sched, create(sched, nightly(sched)))
    view = call(sched, "POST", "schedules/nightly/disable")
    fire(sched)
    assert (view["enabled"], view["next_due"]) == (False, None)
    assert jobs(sched) == []


def test_the_runner_starts_the_timer_function(app: App) -> None:
    assert app.runner is not None and app.runner.timers is not None
    assert app.runner.timers.names == [TIMER]


def test_create_answers_201_with_location_and_next_due(sched: App) -> None:
    status, view, headers = http(sched, "POST", "schedules",
                                 nightly(sched, recurrence={"frequency": "Day", "hours": [2],
                                                            "minutes": [0]}))
    assert status == 201
    assert headers["Location"].endswith("/api/schedules/nightly")
    assert datetime.fromisoformat(view["next_due"]).strftime("%H:%M") == "02:00"


def test_an_invalid_schedule_answers_400_with_every_problem(sched: App) -> None:
    status, body, _ = http(sched, "POST", "schedules",
                           {"name": "x", "target": {"pipeline": "p"}, "cron": "0 0 2 * * *"})
    assert status == 400
    assert len(body["problems"]) == 2


def test_a_name_in_use_answers_409(sched: App) -> None:
    create(sched, nightly(sched))
    assert http(sched, "POST", "schedules", nightly(sched))[0] == 409


def test_an_unknown_schedule_answers_404(sched: App) -> None:
    assert http(sched, "GET", "schedules/nope")[0] == 404


def test_delete_removes_the_schedule(sched: App) -> None:
    create(sched, nightly(sched))
    assert http(sched, "DELETE", "schedules/nightly")[0] == 200
    assert call(sched, "GET", "schedules") == {"schedules": []}
    with pytest.raises(ScheduleNotFoundError, match="no schedule named 'nightly'"):
        call(sched, "GET", "schedules/nightly")


def test_cli_creates_lists_and_disables_schedules(sched: App, tmp_path: Any) -> None:
    assert sched.runner is not None
    file = tmp_path / "nightly.yml"
    file.write_text(json.dumps(nightly(sched)))
    where = ["--url", sched.runner.url, "--key", sched.runner.function_key]
    runner = CliRunner()
    created = runner.invoke(schedule_cli, ["create", str(file), *where])
    assert created.exit_code == 0, created.output
    runner.invoke(schedule_cli, ["disable", "nightly", *where])
    listed = runner.invoke(schedule_cli, ["list", *where])
    assert listed.output.startswith("nightly\tdisabled\tevery 1 Day")
