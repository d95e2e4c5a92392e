"""The README's YAML examples are valid: each one goes through the parser it documents."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from batchfx.core.deployments import parse_deployment
from batchfx.core.pipelines import parse_pipeline
from batchfx.core.recurrence import parse_schedule
from batchfx.core.spec import parse_job_spec

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[dict[str, Any]]:
    found = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    return [yaml.safe_load(text) for text in found]


def test_every_yaml_example_parses() -> None:
    blocks = _blocks()
    assert len(blocks) >= 5
    checked = set()
    for block in blocks:
        if "code_configuration" in block:
            assert parse_deployment(block).name == block["name"]
            checked.add("deployment")
        elif "recurrence" in block or "cron" in block:
            assert parse_schedule(block, now=datetime(2026, 11, 23, tzinfo=UTC)).name
            checked.add("schedule")
        elif "parameters" in block and ("deployment" in block or "job" in block):
            assert parse_pipeline(block).name == block["name"]
            checked.add("pipeline")
        elif "entry_script" in block:
            assert parse_job_spec(block).name == block["name"]
            checked.add("job")
    assert checked == {"deployment", "schedule", "pipeline", "job"}
