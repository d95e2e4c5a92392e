"""What a try needs on the worker: the script's config (code, model and side inputs on
local disk, staged once per worker process and job), the mini-batch's inputs, and a
runner that takes a free script process of the pool for each try.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from batchfx.core.environments import parse_environment
from batchfx.core.models import JobModel, build_layout, layout_paths
from batchfx.core.packing import ManifestLine
from batchfx.core.records import JobRecord
from batchfx.core.script_contract import (
    MiniBatchContext,
    RunInfo,
    ScriptConfig,
    TryError,
    TryOutcome,
    TryPhase,
)
from batchfx.core.spec import JobSpec, split_source_path
from batchfx.core.work_cache import note_use
from batchfx.scoring.mlflow import SCORE_SCRIPT as MLFLOW_SCORE_SCRIPT
from batchfx.scoring.pool import ScriptPool
from batchfx.services.claims import worker_name
from batchfx.services.environment_builder import environment_dir
from batchfx.services.isolation_runs import RunTry
from batchfx.services.script_outputs import sync_worker_outputs
from batchfx.services.staging import (
    changed_local_items,
    download_items,
    local_folder,
    local_items,
    stage_folder,
)
from batchfx.services.work_folders import job_code_root
from batchfx.storage import LOCAL, Storage
from batchfx.tabular.batch import TabularBatch
from batchfx.tabular.copies import copies_folder
from batchfx.tabular.fetch import fetch_batch

__all__ = ["prepare_script", "stage_inputs", "try_runner"]


def try_runner(storage: Storage, pool: ScriptPool, job: JobRecord, spec: JobSpec,
                config: ScriptConfig, line: ManifestLine) -> RunTry:
    """One try on a free process of the pool, then its custom outputs and log uploaded.

    Local files are read by the script where they are: one changed while run() read it
    fails the try as an input error (no other try can read the listed version)."""
    local = line.container == LOCAL and line.tabular is None

    def run(inputs: list[str] | TabularBatch, context: MiniBatchContext) -> TryOutcome:
        done = pool.run_mini_batch(config, spec.process_count_per_node, inputs, context,
                                   float(spec.run_invocation_timeout))
        sync_worker_outputs(storage, job, done.config, context.mini_batch_id,
                            owner=f"{worker_name()}-p{done.slot}")
        # Reports name the script process as its log file is named (logs/<worker>.log).
        worker = os.path.splitext(os.path.basename(done.config.log_path or ""))[0]
        outcome = dataclasses.replace(done.outcome, worker=worker or done.outcome.worker)
        changed = changed_local_items(line.items) if local else ""
        if changed:
            error = TryError(TryPhase.INPUT, "InputError", changed, changed)
            return TryOutcome.failure(error, outcome.items, outcome.seconds, outcome.worker)
        return outcome
    return run


def stage_inputs(storage: Storage, line: ManifestLine,
                 work_dir: str) -> list[str] | TabularBatch:
    """Local copies of the mini-batch's inputs: its files, or its tabular slices."""
    if line.tabular is not None:
        return fetch_batch(storage.files(line.container), line.container, line.tabular,
                           work_dir, copies_folder(storage.settings.work_dir, os.getpid()))
    if line.container == LOCAL:  # read in place, as listed
        return local_items(storage, line.prefix, line.items)
    return download_items(storage, line.container, line.prefix, line.items, work_dir)


_staged: dict[tuple[str, str], str] = {}


def _stage(storage: Storage, job: JobRecord, field: str, path: str) -> str:
    """A job's folder on local disk, checked or fetched once per worker process and job:
    a local model or side input is used in place, code is fetched into the job's own
    folder (the script may write next to itself), a model or side input from storage into
    the read-only cache shared by jobs of the same content."""
    key = (job.job_id, path)
    if key not in _staged:
        container, prefix = split_source_path(field, path)
        pinned = job.submission.pins.get(field)
        if container == LOCAL and field != "source_directory":
            _staged[key] = local_folder(storage, prefix, pinned)
        elif field == "source_directory":  # the job's own copy: no other job touches it
            _staged[key] = stage_folder(storage, container, prefix,
                                        job_code_root(storage.settings.work_dir, job.job_id),
                                        pinned)
        else:
            work_dir = storage.settings.work_dir
            cache = os.path.join(work_dir, "snapshots")
            _staged[key] = stage_folder(
                storage, container, prefix, cache, pinned, read_only=True,
                before_use=lambda version: note_use(work_dir, "snapshots", version,
                                                    job.job_id))
    return _staged[key]


def _lay_out_models(storage: Storage, job: JobRecord, spec: JobSpec
                    ) -> tuple[str | None, tuple[tuple[str, int, str], ...]]:
    """AZUREML_MODEL_DIR and (name, version, path) of each model, laid out as Azure ML
    does (``batchfx.core.models``) once per worker machine and content version."""
    models = list(job.submission.models) or [JobModel.for_path(v, spec.model_names.get(f))
                                             for f, v in spec.model_entries]
    if not models:
        return None, ()
    fields = [field for field, _ in spec.model_entries]
    staged = [(m, _stage(storage, job, field, m.path)) for m, field in zip(models, fields,
                                                                           strict=True)]
    pins = job.submission.pins
    key = json.dumps([[m.to_record(), local, pins.get(field)]
                      for (m, local), field in zip(staged, fields, strict=True)])
    entry = hashlib.sha256(key.encode()).hexdigest()[:24]
    note_use(storage.settings.work_dir, "models", entry, job.job_id)  # before it is looked at
    root = os.path.join(storage.settings.work_dir, "models", entry)
    model_dir = build_layout(root, staged)
    _, paths = layout_paths(root, models)
    return model_dir, tuple((m.name, m.version, paths[(m.name, m.version)]) for m in models)


def prepare_script(storage: Storage, job: JobRecord,
                   spec: JobSpec) -> tuple[ScriptConfig, dict[str, str]]:
    """Stage code, model and side inputs (cached per content version) and build the config."""
    if spec.source_directory and spec.entry_script:
        code_dir, entry_script = (_stage(storage, job, "source_directory",
                                         spec.source_directory), spec.entry_script)
    else:  # an MLflow model without a scoring script: batchfx's own, as Azure ML does
        code_dir, entry_script = str(MLFLOW_SCORE_SCRIPT.parent), MLFLOW_SCORE_SCRIPT.name
    model_dir, models = _lay_out_models(storage, job, spec)
    side = {name: _stage(storage, job, f"side_inputs.{name}", path)
            for name, path in spec.side_inputs.items()}
    name = worker_name().replace(":", "-")
    root = os.path.join(storage.settings.work_dir, "workers", job.job_id, name)
    tags = job.submission.tags
    env = dict(spec.environment_variables)
    env.update({f"AZUREML_BI_SIDE_INPUT_{k.upper()}": v for k, v in side.items()})
    config = ScriptConfig(
        code_dir=code_dir,
        entry_script=entry_script,
        model_dir=model_dir,
        models=models,
        run_info=RunInfo(
            job_id=job.job_id,
            experiment=str(tags.get("experiment") or job.name),
            parent_run_id=str(tags.get("parent_run_id", "")),
            input_datasets=tuple(sorted(side.items())),
            key_vault_url=storage.settings.key_vault_url,
            secrets_file=storage.settings.secrets_file,
        ),
        output_dir=os.path.join(root, "outputs"),
        arguments=tuple(spec.arguments),
        environment_variables=tuple(sorted(env.items())),
        logging_level=spec.logging_level,
        output_format=spec.output_format,
        append_row_header=spec.append_row_header,
        join_input=spec.join_input,
        per_input_file=spec.output_action == "per_input_file",
        max_output_bytes=int(storage.settings.max_output_mb * 1024 * 1024),
        log_path=os.path.join(root, "logs", f"{name}.log"),
        python_path=_environment(storage, job, spec),
    )
    return config, side


def _environment(storage: Storage, job: JobRecord, spec: JobSpec) -> tuple[str, ...]:
    """The folder of the script's own packages, built or fetched once per instance
    (EnvironmentBuildError with pip's error when it cannot be built)."""
    env = parse_environment(spec.environment)
    if env is None:
        return ()
    note_use(storage.settings.work_dir, "envs", env.key, job.job_id)  # before it is looked at
    return (environment_dir(storage, env),)
