"""Registered models in the jobs table, jobs naming them, their reports: against Azurite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchfx.core.deployments import parse_deployment
from batchfx.core.errors import NotRegisteredError, SpecError
from batchfx.core.records import JobRecord, JobState
from batchfx.services.jobs import prepare_job
from batchfx.services.registry import get_model, list_models, register_deployment, register_model
from batchfx.services.run_metrics import write_metrics
from batchfx.services.upload import upload_folder
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite


@pytest.fixture
def model_folder(storage: Storage, tmp_path: Path) -> str:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.txt").write_text("w1")
    return upload_folder(storage, folder, "model")


def _spec(storage: Storage, **changes: object) -> dict[str, object]:
    container = storage.settings.jobs_container
    storage.blobs.upload(container, "code/score.py", b"def run(b):\n    return b\n")
    storage.blobs.upload(container, "data/a.txt", b"a")
    return {"name": "uses-models", "source_directory": f"{container}/code",
            "entry_script": "score.py", "inputs": f"{container}/data",
            "output": "results/out", **changes}


def test_an_uploaded_model_folder_keeps_its_name(model_folder: str) -> None:
    assert model_folder.endswith("/files/model")


def test_versions_count_up_and_the_same_content_is_the_same_version(
        storage: Storage, model_folder: str, tmp_path: Path) -> None:
    first, created = register_model(storage, "digits-clf", model_folder, "first")
    assert (first.version, created) == (1, True)
    again, created = register_model(storage, "digits-clf", model_folder, "first")
    assert (again.version, created) == (1, False)
    other = tmp_path / "v2" / "model"
    other.mkdir(parents=True)
    (other / "weights.txt").write_text("w2")
    second, created = register_model(storage, "digits-clf",
                                     upload_folder(storage, other, "model"), "second")
    assert (second.version, created) == (2, True)
    assert get_model(storage, "digits-clf").version == 2
    assert get_model(storage, "digits-clf", 1).description == "first"
    assert [m.view()["reference"] for m in list_models(storage)] == ["azureml:digits-clf:2"]
    assert second.job_model().asset == "model"


def test_a_bad_registration_names_each_problem(storage: Storage) -> None:
    container = storage.settings.jobs_container
    with pytest.raises(SpecError) as info:
        register_model(storage, "-bad name", f"{container}/nothing-here")
    assert info.value.problems[0].startswith("name: got '-bad name' — expected 1 to 255")
    assert info.value.problems[1].startswith(
        f"path: nothing found under '{container}/nothing-here' — upload the folder first")
    with pytest.raises(SpecError, match="a registered model must not change"):
        register_model(storage, "clf", "/home/me/model")


def test_an_unknown_model_or_version_is_not_registered(storage: Storage,
                                                       model_folder: str) -> None:
    with pytest.raises(NotRegisteredError, match="no model named 'clf'"):
        get_model(storage, "clf")
    register_model(storage, "clf", model_folder)
    with pytest.raises(NotRegisteredError, match="has no version 4; its versions are 1 to 1"):
        get_model(storage, "clf", 4)


def test_a_job_pins_latest_at_submit_and_resolves_folders_by_their_names(
        storage: Storage, model_folder: str) -> None:
    register_model(storage, "clf", model_folder)
    record = prepare_job(storage, _spec(storage, models=[
        "clf@latest", model_folder, {"path": model_folder, "name": "again", "version": 3}]))
    assert [(m.name, m.version, m.asset, m.registered) for m in record.submission.models] == [
        ("clf", 1, "model", True), ("model", 1, "model", False), ("again", 3, "model", False)]


def test_a_job_naming_two_models_alike_is_refused(storage: Storage, model_folder: str) -> None:
    with pytest.raises(SpecError, match="two models would be model version 1"):
        prepare_job(storage, _spec(storage, models=[model_folder, f"{model_folder}/"]))


def test_a_deployment_pins_its_model_when_registered(storage: Storage,
                                                     model_folder: str) -> None:
    register_model(storage, "clf", model_folder)
    spec = _spec(storage)
    stored, _ = register_deployment(storage, parse_deployment({
        "name": "dep-one", "source_directory": spec["source_directory"],
        "entry_script": "score.py", "model": "azureml:clf@latest"}))
    assert stored.deployment.model == "clf:1"


def test_metrics_of_every_worker_are_merged_in_time_order(storage: Storage) -> None:
    container = storage.settings.jobs_container
    job = JobRecord(job_id="job-m", name="job-m", state=JobState.FINALIZING, spec={},
                    created="", output_container=container, output_prefix="out/job-m")
    assert write_metrics(storage, job) == {}  # nothing logged: no file
    lines = {"w1": [{"run": "step", "kind": "log", "name": "acc", "value": 0.5, "time": 2}],
             "w2": [{"run": "step", "kind": "log", "name": "acc", "value": 0.25, "time": 1},
                    {"run": "parent", "kind": "tag", "name": "stage", "value": "x",
                     "time": 3}]}
    for worker, entries in lines.items():
        text = "".join(json.dumps(e) + "\n" for e in entries) + "{broken"
        storage.blobs.upload(container, f"out/job-m/logs/{worker}-p0.metrics.jsonl",
                             text.encode())
    summary = write_metrics(storage, job)
    assert summary["metrics"] == {"acc": {"last": 0.5, "count": 2}}
    assert summary["parent"]["tags"] == {"stage": "x"}
    stored = json.loads(storage.blobs.download(container, "out/job-m/metrics.json"))
    assert stored["metrics"] == {"acc": [0.25, 0.5]}
