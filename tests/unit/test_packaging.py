"""What ships: the deploy requirements match the package, the public surface is stable."""

from __future__ import annotations

import tomllib
from pathlib import Path

import batchfx.core.errors

ROOT = Path(__file__).resolve().parents[2]


def test_requirements_txt_matches_pyproject_dependencies() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert listed == declared


def test_error_tree_is_the_documented_one() -> None:
    assert set(batchfx.core.errors.__all__) == {
        "AzuriteError", "BatchfxError", "ConflictError", "InputError", "JobNotFoundError",
        "JobStateError",
        "OutputError", "ScriptError", "SpecError", "StorageError", "StorageNotFoundError",
        "NotRegisteredError", "ProblemsError", "ScheduleError", "ScheduleExistsError",
        "ScheduleNotFoundError"}
    for name in batchfx.core.errors.__all__:
        assert issubclass(getattr(batchfx.core.errors, name), batchfx.core.errors.BatchfxError)
        assert name in (batchfx.core.errors.__doc__ or "")


def test_function_app_registers_the_documented_functions() -> None:
    from batchfx.local.bindings import app_functions, load_app

    names = {fn.get_function_name() for fn in app_functions(load_app())}
    assert names == {
        # jobs
        "submit_job_http", "list_jobs_http", "get_job_http", "cancel_job_http",
        "score_mini_batch_queue", "record_poison_mini_batch", "watch_job",
        "partition_inputs", "check_job", "end_job",
        # deployments and published pipelines
        "register_deployment_http", "list_deployments_http", "get_deployment_http",
        "delete_deployment_http", "invoke_deployment_http", "publish_pipeline_http",
        "list_pipelines_http", "get_pipeline_http", "delete_pipeline_http", "run_pipeline_http",
        # registered models
        "register_model_http", "list_models_http", "get_model_http",
        # schedules
        "create_schedule_http", "list_schedules_http", "get_schedule_http",
        "enable_schedule_http", "disable_schedule_http", "delete_schedule_http",
        "fire_schedules",
        # blob drops
        "submit_from_blob_drop", "list_drops_http"}


def test_the_gpu_image_runs_the_queue_scorer_alone() -> None:
    """No HTTP, no timer, no Durable function in the GPU scorer's app (issue 14)."""
    import importlib.util

    from batchfx.local.bindings import app_functions

    path = ROOT / "infra" / "gpu" / "function_app.py"
    spec = importlib.util.spec_from_file_location("gpu_function_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    functions = app_functions(module.app)
    assert {fn.get_function_name() for fn in functions} == {
        "score_mini_batch_queue", "record_poison_mini_batch"}
    assert {fn.get_trigger().get_binding_name() for fn in functions} == {"queueTrigger"}
    dockerfile = (ROOT / "infra" / "gpu" / "Dockerfile").read_text()
    assert "COPY infra/gpu/function_app.py /home/site/wwwroot/function_app.py" in dockerfile
    assert "function_app.py /home/site/wwwroot/\n" not in dockerfile
    # infra/ runs that image and nothing beside it: one container, no init container. The
    # image is the one scripts/deploy builds from this Dockerfile (test_infra_deploy.py).
    from test_infra_bicep import MAIN, Template

    main = Template(MAIN, {"deployGpuScorer": True, "gpuImage": "acr1.azurecr.io/gpu:1"})
    template = main.module("gpuScorer").resource("app")["properties"]["template"]
    (container,) = template["containers"]
    assert container["image"] == "acr1.azurecr.io/gpu:1"
    assert "initContainers" not in template
