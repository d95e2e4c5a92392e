"""Job service: submit, look up, list and cancel jobs, and move them between states."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from batchfx.core.errors import (
    ConflictError,
    JobNotFoundError,
    JobStateError,
    SpecError,
    StorageNotFoundError,
)
from batchfx.core.job_details import Submission
from batchfx.core.progress import Progress, init_error_text
from batchfx.core.progress_tally import ROW_COLUMNS, Tally
from batchfx.core.records import JobRecord, JobState, mini_batch_key, utc_now
from batchfx.core.spec import IGNORED_SETTINGS, parse_job_spec, split_storage_path
from batchfx.services.job_models import resolve_models
from batchfx.services.job_transitions import end_job
from batchfx.services.submit_checks import local_pins, storage_path_problems
from batchfx.storage import Storage

__all__ = [
    "cancel_job",
    "get_job",
    "job_progress",
    "job_view",
    "list_jobs",
    "new_job_id",
    "prepare_job",
    "submit_job",
    "submit_job_once",
    "utc_now",
]

logger = logging.getLogger(__name__)


# <name>-<utc time>-<random> (new_job_id); names are 3 to 32 of [a-z0-9-].
_JOB_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


def new_job_id(name: str, now: datetime | None = None) -> str:
    """``<name>-<utc time>-<random>``: unique, sortable by submission time within a name."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dt%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(3)}"


def prepare_job(storage: Storage, data: object, *, client_request_id: str = "",
                tags: dict[str, str] | None = None) -> JobRecord:
    """Validate a spec and its storage paths and build the job's record; writes nothing."""
    spec = parse_job_spec(data)
    problems = storage_path_problems(storage, spec)
    try:
        models = resolve_models(storage, spec)
    except SpecError as exc:
        problems += exc.problems
    if problems:
        raise SpecError(problems)
    job_id = new_job_id(spec.name)
    pins = local_pins(storage, spec)
    if spec.output:
        container, prefix = split_storage_path("output", spec.output)
    else:
        container, prefix = storage.settings.jobs_container, "outputs"
    record = JobRecord(
        job_id=job_id,
        name=spec.name,
        state=JobState.QUEUED,
        spec=spec.to_record(),
        created=utc_now(),
        output_container=container,
        output_prefix=f"{prefix}/{job_id}" if prefix else job_id,
        client_request_id=client_request_id,
        submission=Submission(tags=dict(tags or {}), pins=pins, models=tuple(models)),
    )
    size = len(record.to_entity()["spec"])
    if size > 30_000:
        raise SpecError([f"spec: {size} characters of settings once stored — keep arguments "
                         "and environment_variables under 30,000 characters"])
    return record


def _record_job(storage: Storage, record: JobRecord) -> None:
    storage.blobs.ensure_container(record.output_container)
    storage.tables.insert(storage.settings.jobs_table, record.to_entity())
    inputs = record.spec["inputs"]
    paths = [i["path"] for i in inputs] if isinstance(inputs, list) else [inputs["path"]]
    logger.info("job %s: submitted (%s)", record.job_id, ", ".join(paths))


def submit_job(storage: Storage, data: object, *, client_request_id: str = "",
               tags: dict[str, str] | None = None) -> JobRecord:
    """Validate a spec, check its storage paths and record the job (state ``queued``)."""
    record = prepare_job(storage, data, client_request_id=client_request_id, tags=tags)
    _record_job(storage, record)
    return record


REQUEST_PARTITION = "request"


def _request_key(client_request_id: str) -> str:
    # RowKeys may not hold '/', '\\', '#' or '?': the id is hashed, and kept in a column.
    return hashlib.sha256(client_request_id.encode()).hexdigest()


def submit_job_once(storage: Storage, data: object, *, client_request_id: str,
                    tags: dict[str, str] | None = None) -> tuple[JobRecord, bool]:
    """Submit unless a job with this client request id exists; returns (job, created).

    The request row is written before the job row, so two racing submits of one id
    create one job: the loser reads the winner's job id.
    """
    table = storage.settings.jobs_table
    key = _request_key(client_request_id)
    found = storage.tables.get(table, REQUEST_PARTITION, key)
    if found is not None:
        try:
            return get_job(storage, str(found.values["job_id"])), False
        except JobNotFoundError:  # a submit that stopped between the two writes
            pass
    record = prepare_job(storage, data, client_request_id=client_request_id, tags=tags)
    row = {"PartitionKey": REQUEST_PARTITION, "RowKey": key, "job_id": record.job_id,
           "client_request_id": client_request_id[:1000], "created": record.created}
    try:
        if found is None:
            storage.tables.insert(table, row)
        else:
            storage.tables.replace(table, row, etag=found.etag)
    except ConflictError:
        winner = storage.tables.get(table, REQUEST_PARTITION, key)
        if winner is None:
            raise
        return get_job(storage, str(winner.values["job_id"])), False
    _record_job(storage, record)
    return record, True


def get_job(storage: Storage, job_id: str) -> JobRecord:
    """The job's record; JobNotFoundError when there is none."""
    if not _JOB_ID_RE.match(job_id):  # never a job's id; not asked of the table either
        raise JobNotFoundError(f"no job with id {job_id[:100]!r}"
                               + ("…" if len(job_id) > 100 else ""))
    found = storage.tables.get(storage.settings.jobs_table, JobRecord.PARTITION, job_id)
    if found is None:
        raise JobNotFoundError(f"no job with id {job_id!r}")
    return JobRecord.from_entity(found.values)


def list_jobs(storage: Storage, *, limit: int = 100) -> list[JobRecord]:
    """The most recent jobs, newest first."""
    rows = storage.tables.query(storage.settings.jobs_table, JobRecord.PARTITION)
    jobs = [JobRecord.from_entity(r) for r in rows]
    jobs.sort(key=lambda j: j.created, reverse=True)
    return jobs[:limit]


def cancel_job(storage: Storage, job_id: str) -> JobRecord:
    """Cancel a job that has not ended; scorers stop taking its mini-batches."""
    active = [s for s in JobState if not s.is_final]
    try:
        job = end_job(storage, job_id, JobState.CANCELED, reason="canceled by request",
                      allowed_from=active)
    except JobStateError:
        job = get_job(storage, job_id)
        raise JobStateError(f"job {job_id} already ended as {job.state.value}; "
                            "nothing to cancel") from None
    logger.info("job %s: canceled", job_id)
    return job


def elapsed_seconds(job: JobRecord) -> float:
    """Seconds from the job's start to its end (or to now)."""
    if not job.started:
        return 0.0
    start = datetime.fromisoformat(job.started)
    end = datetime.fromisoformat(job.ended) if job.ended else datetime.now(UTC)
    return max(0.0, (end - start).total_seconds())


# Checks that read only the rows written since the last one, between two full reads.
FULL_READ_EVERY = 100


def _tally_blob(job_id: str) -> str:
    return f"jobs/{job_id}/progress.json"


def job_progress(storage: Storage, job: JobRecord, *, keep: bool = False,
                 full: bool = False) -> Progress:
    """Counts summed from the job's mini-batch rows: those of the tally kept by the last
    check plus the rows written since (``full``: every row, read again), kept for the next
    read with ``keep``. Once a full read found every mini-batch finished, nothing more is
    read."""
    # A job that reuses an earlier one's results shows that job's counts.
    source = job.reuse.reused_from or job.job_id
    container = storage.settings.jobs_container
    tally = Tally()
    if not full:
        with contextlib.suppress(StorageNotFoundError):  # no check kept one yet
            tally = Tally.from_json(storage.blobs.download(container, _tally_blob(source)))
    if keep and tally.checks >= FULL_READ_EVERY:
        full, tally = True, Tally()  # a row the margin missed is counted at the latest now
    if not tally.exact:
        since = tally.since()
        rows = storage.tables.query(storage.settings.minibatches_table, source,
                                    select=["RowKey", "Timestamp", *ROW_COLUMNS], since=since,
                                    from_key=mini_batch_key(tally.first_open()) if since
                                    else None)
        tally.add(rows)
        if tally.init_error_at >= 0 and not tally.init_error:  # its text, once
            found = storage.tables.get(storage.settings.minibatches_table, source,
                                       mini_batch_key(tally.init_error_at))
            if found is not None:
                tally.init_error = init_error_text(found.values)
        tally.checks = 0 if full else tally.checks + 1
        tally.exact = (full and job.partitioned and not tally.running
                       and tally.succeeded + tally.failed >= job.mini_batches_total)
        if keep:
            storage.blobs.upload(container, _tally_blob(source), tally.to_json())
    return tally.progress(items_total=job.items_total,
                          mini_batches_total=job.mini_batches_total,
                          partitioned=job.partitioned, elapsed_s=elapsed_seconds(job),
                          items_estimated=job.partitioning.items_estimated)


def _row_outputs(location: str, spec: dict[str, Any]) -> dict[str, str | None]:
    """Where the job's rows go: one append_row file, one per key=value folder (a pattern),
    or one per input file."""
    name = spec.get("append_row_file_name")
    action = spec.get("output_action", "append_row")
    if action == "append_row" and spec.get("partition_output"):
        folders = "/".join(f"{key}=*" for key in spec.get("partition_keys") or [])
        return {"append_row_file": None, "append_row_files": f"{location}/{folders}/{name}"}
    if action == "append_row":
        return {"append_row_file": f"{location}/{name}"}
    if action == "per_input_file":
        return {"append_row_file": None,
                "per_input_files": f"{location}/<each input file's relative path>"}
    return {"append_row_file": None}


def job_view(job: JobRecord, progress: Progress | None) -> dict[str, Any]:
    """The JSON shape of a job for the HTTP API and the CLI."""
    spec = job.spec
    view: dict[str, Any] = {
        "id": job.job_id,
        "name": job.name,
        "description": spec.get("description"),
        "state": job.state.value,
        "created": job.created,
        "started": job.started or None,
        "ended": job.ended or None,
        "reason": job.reason or None,
        "error": job.error or None,
        "outputs_ready": job.outcome.outputs_ready,
        **({"reports_error": job.outcome.reports_error} if job.outcome.reports_error else {}),
        "reused_from": job.reuse.reused_from or None,
        "ignored_settings": {k: why for k, why in IGNORED_SETTINGS.items()
                             if spec.get(k) is not None},
        # What the script logged with azureml.core's Run.log and Run.tag (metrics.json)
        **({"metrics": job.outcome.metrics} if job.outcome.metrics else {}),
        "models": [f"{m.name}:{m.version}" for m in job.submission.models],
        "output": {
            "location": job.output_location,
            **_row_outputs(job.output_location, spec),
            "summary": f"{job.output_location}/job_result.txt",
        },
    }
    final = job.outcome.final
    if final and job.state.is_final:  # an ended job's one final tally, kept by finalize
        view.update(final)
        if job.state is not JobState.COMPLETED:  # only a completed job assembles its rows
            view["output"]["append_row_file"] = None
            view["output"].pop("append_row_files", None)
            view["output"].pop("per_input_files", None)
    elif progress is not None:
        view.update(progress.to_dict())
    return view
