"""Shared cases of the job spec tests: a valid spec and how to get its problems."""

from __future__ import annotations

from typing import Any

import pytest

from batchfx.core.errors import SpecError
from batchfx.core.spec import parse_job_spec

BASE: dict[str, Any] = {
    "name": "digits-nightly",
    "entry_script": "score.py",
    "source_directory": "src",
    "inputs": "digits/images",
    "output": "results/digits",
}
TABULAR: dict[str, Any] = {"path": "data/sales", "type": "tabular", "format": "parquet"}


def problems_of(data: object) -> list[str]:
    """The problems parse_job_spec reports for ``data`` (it must refuse it)."""
    with pytest.raises(SpecError) as info:
        parse_job_spec(data)
    assert info.value.problems, "SpecError without problems"
    return info.value.problems


def the_problem_of(data: object) -> str:
    """The one problem of ``data``."""
    found = problems_of(data)
    assert len(found) == 1, found
    return found[0]


def the_problem(**changes: Any) -> str:
    """The one problem of BASE with ``changes``."""
    return the_problem_of({**BASE, **changes})
