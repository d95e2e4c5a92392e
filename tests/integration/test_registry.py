"""Deployments and pipelines stored in the jobs table, and job specs made from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from app_settings import app_settings

from batchfx.core.deployments import Deployment, parse_deployment
from batchfx.core.errors import SpecError
from batchfx.core.pipelines import parse_pipeline
from batchfx.services.invocations import job_spec_for
from batchfx.services.jobs import prepare_job
from batchfx.services.registry import (
    NotRegisteredError,
    delete_deployment,
    delete_pipeline,
    get_deployment,
    get_pipeline,
    list_deployments,
    list_pipelines,
    publish_pipeline,
    register_deployment,
)
from batchfx.services.upload import upload_folder
from batchfx.storage import Storage

pytestmark = pytest.mark.azurite

OUTPUT = "results/digits"


@pytest.fixture
def storage(connection_string: str, unique_name: str, tmp_path: Path) -> Storage:
    store = Storage.from_settings(app_settings(connection_string, unique_name,
                                               tmp_path / "work"))
    store.ensure_resources()
    return store


@pytest.fixture
def code(storage: Storage, tmp_path: Path) -> str:
    """An uploaded code folder with score.py."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "score.py").write_text("def run(mini_batch):\n    return mini_batch\n")
    return upload_folder(storage, folder, "code")


@pytest.fixture
def inputs(storage: Storage) -> str:
    storage.blobs.upload(storage.settings.jobs_container, "data/2024-05-01/a.txt", b"a")
    return f"{storage.settings.jobs_container}/data/2024-05-01"


def deployment(code: str, **settings: Any) -> Deployment:
    return parse_deployment({"name": "digits", "source_directory": code,
                             "entry_script": "score.py",
                             "settings": {"arguments": ["--mode", "fast"], **settings}})


def table_rows(storage: Storage) -> int:
    table = storage.settings.jobs_table
    return sum(len(list(storage.tables.query(table, kind))) for kind in ("deployment",
                                                                          "pipeline"))


def blob_count(storage: Storage) -> int:
    return len(list(storage.blobs.list_names(storage.settings.jobs_container, "")))


def test_first_registration_is_version_1(storage: Storage, code: str) -> None:
    stored, created = register_deployment(storage, deployment(code))
    assert (stored.version, created) == (1, True)
    assert get_deployment(storage, "digits").deployment == deployment(code)


def test_registering_unchanged_content_stores_nothing_new(storage: Storage, code: str) -> None:
    register_deployment(storage, deployment(code))
    rows, blobs = table_rows(storage), blob_count(storage)
    stored, created = register_deployment(storage, deployment(code))
    assert (stored.version, created) == (1, False)
    assert (table_rows(storage), blob_count(storage)) == (rows, blobs)


def test_changed_settings_make_the_next_version_and_keep_the_old(storage: Storage,
                                                                 code: str) -> None:
    register_deployment(storage, deployment(code))
    stored, created = register_deployment(storage, deployment(code, mini_batch_size=3))
    assert (stored.version, created) == (2, True)
    assert get_deployment(storage, "digits").deployment.settings["mini_batch_size"] == 3
    assert get_deployment(storage, "digits", 1).deployment.settings["mini_batch_size"] == 10


def test_an_unknown_name_is_refused_listing_the_known_ones(storage: Storage, code: str) -> None:
    register_deployment(storage, deployment(code))
    with pytest.raises(NotRegisteredError, match="no deployment named 'digit'; registered "
                                                 "deployments: digits"):
        get_deployment(storage, "digit")


def test_an_unknown_version_names_the_versions(storage: Storage, code: str) -> None:
    register_deployment(storage, deployment(code))
    with pytest.raises(NotRegisteredError, match="has no version 4; its versions are 1 to 1"):
        get_deployment(storage, "digits", 4)


def test_a_deleted_deployment_is_gone_from_lists_and_lookups(storage: Storage,
                                                             code: str) -> None:
    register_deployment(storage, deployment(code))
    delete_deployment(storage, "digits")
    assert list_deployments(storage) == []
    with pytest.raises(NotRegisteredError, match="'digits' was deleted"):
        get_deployment(storage, "digits")


def test_registering_a_deleted_name_again_makes_a_new_version(storage: Storage,
                                                             code: str) -> None:
    register_deployment(storage, deployment(code))
    delete_deployment(storage, "digits")
    stored, created = register_deployment(storage, deployment(code))
    assert (stored.version, created) == (2, True)
    assert [d.deployment.name for d in list_deployments(storage)] == ["digits"]


def test_a_missing_entry_script_is_refused(storage: Storage, code: str) -> None:
    bad = parse_deployment({"name": "digits", "source_directory": code,
                            "entry_script": "other.py"})
    with pytest.raises(SpecError, match=r"entry_script: 'other\.py' not found in "
                                        r"source_directory"):
        register_deployment(storage, bad)


def test_a_local_path_is_refused_as_a_stored_code_path(storage: Storage) -> None:
    bad = parse_deployment({"name": "digits", "source_directory": "mycode",
                            "entry_script": "score.py"})
    with pytest.raises(SpecError, match="container 'mycode' does not exist"):
        register_deployment(storage, bad)


def test_a_deployment_target_runs_its_code_over_the_inputs(storage: Storage, code: str,
                                                          inputs: str) -> None:
    register_deployment(storage, deployment(code))
    spec = job_spec_for(storage, {"deployment": "digits", "inputs": inputs,
                                  "output": OUTPUT, "parameters": {"top_k": 3}})
    assert (spec["name"], spec["source_directory"], spec["inputs"]["path"]) == (
        "digits", code, inputs)
    assert spec["arguments"] == ["--mode", "fast", "--top_k", "3"]
    assert spec["environment_variables"] == {"BATCHFX_PARAM_TOP_K": "3"}
    assert prepare_job(storage, spec).name == "digits"  # storage checks pass


def test_a_deployment_without_output_writes_where_azure_ml_would(
        storage: Storage, code: str, inputs: str) -> None:
    # As Azure ML's default datastore: <outputs container>/<endpoint>/<deployment>/<job id>.
    register_deployment(storage, deployment(code))
    spec = job_spec_for(storage, {"deployment": "digits", "inputs": inputs})
    assert spec["output"] == f"{storage.settings.outputs_container}/digits"
    job = prepare_job(storage, spec)  # allowed even where an allow-list leaves it out
    assert job.output_location == f"{storage.settings.outputs_container}/digits/{job.job_id}"
    register_deployment(storage, parse_deployment({**deployment(code).to_record(),
                                                   "endpoint_name": "mnist"}))
    spec = job_spec_for(storage, {"deployment": "digits", "inputs": inputs})
    assert spec["output"] == f"{storage.settings.outputs_container}/mnist/digits"


def test_a_deployment_target_uses_the_deployments_default_output(
        storage: Storage, code: str, inputs: str) -> None:
    register_deployment(storage, parse_deployment({**deployment(code).to_record(),
                                                   "output": "results/digits"}))
    spec = job_spec_for(storage, {"deployment": "digits", "inputs": inputs})
    assert spec["output"] == "results/digits"


def test_target_settings_override_the_deployment_with_v2_names(
        storage: Storage, code: str, inputs: str) -> None:
    register_deployment(storage, deployment(code, run_max_try=2))
    spec = job_spec_for(storage, {"deployment": "digits", "inputs": inputs, "output": OUTPUT,
                                  "settings": {"retry_settings": {"max_retries": 5}}})
    assert spec["run_max_try"] == 5


def test_assignments_fill_placeholders_of_a_deployment_target(
        storage: Storage, code: str, inputs: str) -> None:
    register_deployment(storage, deployment(code))
    container = storage.settings.jobs_container
    spec = job_spec_for(storage, {"deployment": "digits",
                                  "inputs": f"{container}/data/${{{{parameters.date}}}}",
                                  "output": OUTPUT}, {"date": "2024-05-01"})
    assert spec["inputs"]["path"] == inputs


def test_a_pinned_version_is_used(storage: Storage, code: str, inputs: str) -> None:
    register_deployment(storage, deployment(code))
    register_deployment(storage, deployment(code, mini_batch_size=3))
    spec = job_spec_for(storage, {"deployment": "digits", "version": 1, "inputs": inputs,
                                  "output": OUTPUT})
    assert spec["mini_batch_size"] == 10


def test_a_deleted_deployment_cannot_be_invoked(storage: Storage, code: str,
                                                inputs: str) -> None:
    register_deployment(storage, deployment(code))
    delete_deployment(storage, "digits")
    with pytest.raises(NotRegisteredError, match="was deleted"):
        job_spec_for(storage, {"deployment": "digits", "inputs": inputs})


def job_pipeline(code: str, container: str) -> dict[str, Any]:
    return {"name": "nightly",
            "parameters": {"date": {"type": "string"},
                           "size": {"type": "integer", "default": 4}},
            "job": {"source_directory": code, "entry_script": "score.py",
                    "inputs": f"{container}/data/${{{{parameters.date}}}}",
                    "output": f"{container}-out/${{{{parameters.date}}}}",
                    "mini_batch_size": "${{parameters.size}}"}}


def test_a_pipeline_target_renders_its_job_template(storage: Storage, code: str,
                                                    inputs: str) -> None:
    container = storage.settings.jobs_container
    publish_pipeline(storage, parse_pipeline(job_pipeline(code, container)))
    spec = job_spec_for(storage, {"pipeline": "nightly",
                                  "parameters": {"date": "2024-05-01", "size": "2"}})
    assert (spec["name"], spec["inputs"]["path"], spec["mini_batch_size"]) == (
        "nightly", inputs, 2)
    assert spec["output"] == f"{container}-out/2024-05-01"


def test_a_pipeline_target_refuses_an_unknown_parameter(storage: Storage, code: str) -> None:
    publish_pipeline(storage, parse_pipeline(job_pipeline(code, "c")))
    with pytest.raises(SpecError, match="parameter 'dat': unknown — did you mean 'date'"):
        job_spec_for(storage, {"pipeline": "nightly"}, {"dat": "x"})


def test_a_deployment_pipeline_runs_the_deployment_with_its_parameters(
        storage: Storage, code: str, inputs: str) -> None:
    register_deployment(storage, deployment(code))
    container = storage.settings.jobs_container
    publish_pipeline(storage, parse_pipeline({
        "name": "nightly", "deployment": "digits",
        "parameters": {"date": {"type": "string"}, "top_k": {"type": "integer", "default": 2}},
        "inputs": f"{container}/data/${{{{parameters.date}}}}", "output": OUTPUT,
        "settings": {"mini_batch_size": "${{parameters.top_k}}"}}))
    spec = job_spec_for(storage, {"pipeline": "nightly"}, {"date": "2024-05-01"})
    assert (spec["name"], spec["inputs"]["path"], spec["mini_batch_size"]) == (
        "nightly", inputs, 2)
    assert spec["arguments"] == ["--mode", "fast", "--date", "2024-05-01", "--top_k", "2"]


def test_publishing_a_pipeline_of_an_unknown_deployment_is_refused(storage: Storage) -> None:
    pipeline = parse_pipeline({"name": "nightly", "deployment": "digits", "inputs": "a/b"})
    with pytest.raises(NotRegisteredError, match="no deployment named 'digits'"):
        publish_pipeline(storage, pipeline)


def test_pipelines_are_versioned_and_deleted_like_deployments(storage: Storage,
                                                              code: str) -> None:
    container = storage.settings.jobs_container
    first, _ = publish_pipeline(storage, parse_pipeline(job_pipeline(code, container)))
    again, created = publish_pipeline(storage, parse_pipeline(job_pipeline(code, container)))
    assert (first.version, again.version, created) == (1, 1, False)
    delete_pipeline(storage, "nightly")
    assert list_pipelines(storage) == []
    with pytest.raises(NotRegisteredError, match="was deleted"):
        get_pipeline(storage, "nightly")
