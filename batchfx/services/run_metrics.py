"""A job's metrics and tags: what its script logged with azureml.core's ``Run.log``/``tag``
(``batchfx.scoring.aml_run`` appends each call to ``logs/<worker>.metrics.jsonl``). Finalize
merges them into ``metrics.json`` next to the outputs, and a short summary into the view."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from batchfx.core.records import JobRecord
from batchfx.storage import Storage

__all__ = ["METRICS_FILE", "merge_metrics", "metrics_summary", "write_metrics"]

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
_SUFFIX = ".metrics.jsonl"
_MAX_NAMES = 100
_MAX_TEXT = 200


def merge_metrics(lines: Iterable[str]) -> dict[str, Any]:
    """Every worker's calls in time order: ``{"metrics": {name: [values]}, "tags": {k: v},
    "parent": {...the same for Run.parent...}}``; a line that is not JSON is skipped (a
    worker killed while writing)."""
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "name" in entry:
            entries.append(entry)
    entries.sort(key=lambda e: float(e.get("time", 0)))
    runs: dict[str, dict[str, Any]] = {}
    for entry in entries:
        run = runs.setdefault("parent" if entry.get("run") == "parent" else "step",
                              {"metrics": {}, "tags": {}})
        if entry.get("kind") == "tag":
            run["tags"][str(entry["name"])] = entry.get("value")
        else:
            run["metrics"].setdefault(str(entry["name"]), []).append(entry.get("value"))
    step = runs.get("step", {"metrics": {}, "tags": {}})
    return {**step, "parent": runs.get("parent", {"metrics": {}, "tags": {}})}


def _short(value: Any) -> Any:
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


def metrics_summary(merged: dict[str, Any]) -> dict[str, Any]:
    """For the job's view: each metric's last value and how many were logged, and the tags
    (at most 100 names each; ``metrics.json`` has everything)."""
    def summarize(run: dict[str, Any]) -> dict[str, Any]:
        metrics = {name: {"last": _short(values[-1]), "count": len(values)}
                   for name, values in list(run["metrics"].items())[:_MAX_NAMES]}
        tags = {k: _short(v) for k, v in list(run["tags"].items())[:_MAX_NAMES]}
        return {"metrics": metrics, "tags": tags}
    out = summarize(merged)
    parent = summarize(merged["parent"])
    if parent["metrics"] or parent["tags"]:
        out["parent"] = parent
    return out


def write_metrics(storage: Storage, job: JobRecord) -> dict[str, Any]:
    """Merge the workers' metrics files into ``metrics.json``; returns the view's summary
    (empty when the script logged nothing, and then no file is written)."""
    base = f"{job.output_prefix}/logs/"
    lines: list[str] = []
    for ref in storage.blobs.list_names(job.output_container, base):
        if ref.name.endswith(_SUFFIX):
            text = storage.blobs.download(job.output_container, ref.name)
            lines += text.decode("utf-8", errors="replace").splitlines()
    if not lines:
        return {}
    merged = merge_metrics(lines)
    storage.blobs.upload(job.output_container, f"{job.output_prefix}/{METRICS_FILE}",
                         json.dumps(merged, indent=1).encode())
    logger.info("job %s: %d metric calls merged into %s", job.job_id, len(lines), METRICS_FILE)
    return metrics_summary(merged)
