"""Blob drops through the local runner: Event Grid stand-in → trigger → job → results."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_settings import app_settings
from click.testing import CliRunner
from e2e_app import App, lines

from batchfx.cli.drops import drops
from batchfx.core.deployments import parse_deployment
from batchfx.local.bindings import load_app
from batchfx.local.blob_events import BlobEventEmulator
from batchfx.services.registry import register_deployment
from batchfx.storage import Storage

DAY = "2026-11-22"


@pytest.fixture
def app(connection_string: str, unique_name: str, tmp_path: Path) -> Iterator[App]:
    """conftest's app, with an outputs container of its own as well (default outputs go there)."""
    settings = app_settings(connection_string, unique_name, tmp_path / "work",
                            inbox_container=f"{unique_name}-inbox",
                            outputs_container=f"{unique_name}-outputs", poll_interval_s=0.3,
                            lease_margin_s=2.0)
    instance = App(settings, Storage.from_settings(settings), tmp_path)
    instance.start()
    try:
        yield instance
    finally:
        for runner in instance.runners:
            runner.stop()


def register(app: App, name: str = "echo-drop") -> str:
    """Register a deployment scoring with tests/scripts/echo.py; returns its name."""
    code = app.upload_script("echo.py")
    register_deployment(app.storage, parse_deployment({
        "name": name, "source_directory": code, "entry_script": "score.py",
        "output": f"{app.settings.jobs_container}-out/drops", "settings": {"mini_batch_size": 2}}))
    return name


def put(app: App, name: str, text: str = "") -> None:
    app.storage.blobs.upload(app.settings.inbox_container, name, text.encode())


def drop_folder(app: App, deployment: str, count: int = 3) -> None:
    """Data first, then the marker that says the folder is complete."""
    for index in range(count):
        put(app, f"{deployment}/{DAY}/{index}.txt", f"item {index}\n")
    put(app, f"{deployment}/{DAY}/_SUCCESS")


def drop_views(app: App) -> list[dict[str, Any]]:
    assert app.api is not None
    result: list[dict[str, Any]] = app.api.call("GET", "drops")["drops"]
    return result


def wait_for_drop(app: App, blob: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /api/drops until the drop of ``blob`` (inbox/...) is recorded."""
    deadline = time.monotonic() + timeout
    name = f"{app.settings.inbox_container}/{blob}"
    while True:
        found = [d for d in drop_views(app) if d["blob"] == name]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no drop record for {name} in {timeout}s")
        time.sleep(0.2)


def redeliver(app: App) -> int:
    """What a restarted emulator does: deliver every blob in the inbox again."""
    runner = app.runner
    assert runner is not None and runner.durable is not None
    durable, url = runner.durable, runner.url

    def binding() -> str:
        return durable.client_binding(url)

    emulator = BlobEventEmulator(load_app(), app.storage, app.settings.to_env(), binding)
    return emulator.poll_once()


def test_a_success_marker_runs_one_job_over_the_dropped_folder(app: App) -> None:
    deployment = register(app)
    drop_folder(app, deployment)
    record = wait_for_drop(app, f"{deployment}/{DAY}/_SUCCESS")
    assert record["state"] == "submitted", record
    view = app.wait(record["job_id"])
    assert view["state"] == "completed"
    assert lines(app.outputs(view)["parallel_run_step.txt"]) == [
        f"{i}.txt item {i}" for i in range(3)]
    assert app.api is not None and len(app.api.list()) == 1


def test_a_drop_for_an_azure_ml_deployment_without_output_writes_to_the_default(
        app: App) -> None:
    # An Azure ML deployment YAML names no output: its drop was refused before.
    code = app.upload_script("echo.py")
    register_deployment(app.storage, parse_deployment({
        "name": "echo-aml", "endpoint_name": "echo-endpoint", "type": "model",
        "code_configuration": {"code": code, "scoring_script": "score.py"},
        "settings": {"mini_batch_size": 2, "output_file_name": "predictions.txt"}}))
    drop_folder(app, "echo-aml")
    record = wait_for_drop(app, f"echo-aml/{DAY}/_SUCCESS")
    assert record["state"] == "submitted", record
    view = app.wait(record["job_id"])
    assert view["state"] == "completed"
    assert view["output"]["location"] == (
        f"{app.settings.outputs_container}/echo-endpoint/echo-aml/{record['job_id']}")
    assert lines(app.outputs(view)["predictions.txt"]) == [
        f"{i}.txt item {i}" for i in range(3)]


def test_a_marker_delivered_again_does_not_run_a_second_job(app: App) -> None:
    deployment = register(app)
    drop_folder(app, deployment)
    record = wait_for_drop(app, f"{deployment}/{DAY}/_SUCCESS")
    app.wait(record["job_id"])
    assert redeliver(app) >= 1
    assert app.api is not None
    assert [j["id"] for j in app.api.list()] == [record["job_id"]]


def test_a_restarted_runner_does_not_run_the_drop_again(app: App) -> None:
    deployment = register(app)
    drop_folder(app, deployment)
    record = wait_for_drop(app, f"{deployment}/{DAY}/_SUCCESS")
    app.wait(record["job_id"])
    app.stop()
    app.start()
    assert redeliver(app) >= 1
    assert app.api is not None
    assert [j["id"] for j in app.api.list()] == [record["job_id"]]


def _next_job(app: App, count: int) -> dict[str, Any]:
    """Wait until ``count`` jobs exist; the newest one, ended."""
    deadline = time.monotonic() + 60
    assert app.api is not None
    while len(app.api.list()) < count:
        assert time.monotonic() < deadline, "the new marker submitted no job"
        time.sleep(0.2)
    return app.wait(app.api.list()[0]["id"])


def test_a_new_marker_runs_the_folder_again_and_reuses_unchanged_results(app: App) -> None:
    deployment = register(app)
    drop_folder(app, deployment)
    first = wait_for_drop(app, f"{deployment}/{DAY}/_SUCCESS")
    app.wait(first["job_id"])
    put(app, f"{deployment}/{DAY}/_SUCCESS", "again")  # the same data: nothing to score
    second = _next_job(app, 2)
    assert second["state"] == "completed" and second["reused_from"] == first["job_id"]
    put(app, f"{deployment}/{DAY}/3.txt", "item 3\n")  # new data, then a new marker
    put(app, f"{deployment}/{DAY}/_SUCCESS", "and again")
    third = _next_job(app, 3)
    assert third["state"] == "completed" and third["reused_from"] is None
    assert len(lines(app.outputs(third)["parallel_run_step.txt"])) == 4


def test_a_drop_for_an_unknown_deployment_shows_as_rejected(app: App) -> None:
    register(app)
    put(app, f"nosuch/{DAY}/0.txt", "item\n")
    put(app, f"nosuch/{DAY}/_SUCCESS")
    record = wait_for_drop(app, f"nosuch/{DAY}/_SUCCESS")
    assert record["state"] == "rejected"
    assert "no deployment named 'nosuch'; registered deployments: echo-drop" \
        in record["reason"]
    assert app.api is not None and app.api.list() == []


def test_a_job_file_drop_submits_its_job(app: App) -> None:
    deployment = register(app)
    inbox = app.settings.inbox_container
    for index in range(2):
        put(app, f"{deployment}/reruns/{index}.txt", f"again {index}\n")
    put(app, f"{deployment}/rerun.job.yml",
        f"inputs: {inbox}/{deployment}/reruns\nsettings:\n  mini_batch_size: 1\n")
    record = wait_for_drop(app, f"{deployment}/rerun.job.yml")
    assert record["state"] == "submitted", record
    view = app.wait(record["job_id"])
    assert view["mini_batches"]["total"] == 2
    assert lines(app.outputs(view)["parallel_run_step.txt"]) == ["0.txt again 0",
                                                                  "1.txt again 1"]


def test_batchfx_drops_lists_a_rejected_drop_with_its_reason(app: App) -> None:
    assert app.runner is not None
    put(app, "nosuch/x/_SUCCESS")
    wait_for_drop(app, "nosuch/x/_SUCCESS")
    result = CliRunner().invoke(drops, ["--url", app.runner.url, "--key",
                                        app.runner.function_key])
    assert result.exit_code == 0, result.output
    assert f"rejected\t{app.settings.inbox_container}/nosuch/x/_SUCCESS\tno deployment " \
        "named 'nosuch'" in result.output


def test_data_files_without_a_marker_submit_nothing(app: App) -> None:
    deployment = register(app)
    put(app, f"{deployment}/{DAY}/0.txt", "item\n")
    redeliver(app)
    assert drop_views(app) == []
    assert app.api is not None and app.api.list() == []

