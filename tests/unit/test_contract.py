"""The scoring-script contract: config keys and the return-value rules."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

import batchfx.scoring
from batchfx.core.script_contract import (
    MiniBatchContext,
    ResultCounts,
    ScriptConfig,
    TryError,
    TryOutcome,
    TryPhase,
    evaluate_result,
)


def make_config(**changes: object) -> ScriptConfig:
    config = ScriptConfig(
        code_dir="/code",
        entry_script="score.py",
        model_dir="/model",
        output_dir="/out",
        arguments=("--threshold", "0.5"),
        environment_variables=(("A", "1"),),
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def test_public_surface_is_listed_in_all() -> None:
    assert sorted(batchfx.scoring.__all__) == [
        "MiniBatchContext",
        "ResultCounts",
        "RunInfo",
        "ScriptConfig",
        "ScriptProcess",
        "TryError",
        "TryOutcome",
        "TryPhase",
        "evaluate_result",
    ]
    for name in batchfx.scoring.__all__:
        assert hasattr(batchfx.scoring, name)


def test_config_key_is_stable_for_equal_configs() -> None:
    assert make_config().key == make_config().key


@pytest.mark.parametrize(
    "changes",
    [
        {"code_dir": "/other"},
        {"entry_script": "other.py"},
        {"model_dir": None},
        {"output_dir": "/out2"},
        {"arguments": ("--threshold", "0.6")},
        {"environment_variables": (("A", "2"),)},
        {"logging_level": "DEBUG"},
        {"output_format": "csv"},
        {"append_row_header": True},
    ],
)
def test_config_key_changes_with_what_the_script_sees(changes: dict[str, object]) -> None:
    assert make_config(**changes).key != make_config().key


def test_config_key_ignores_log_path() -> None:
    assert make_config(log_path="/logs/a.log").key == make_config(log_path=None).key


def test_config_refuses_unknown_output_format() -> None:
    with pytest.raises(ValueError, match="output_format: 'xml'"):
        make_config(output_format="xml")


def test_context_dicts_default_empty_and_unshared() -> None:
    first = MiniBatchContext(job_id="j", mini_batch_id="m0", minibatch_index=0, try_number=1)
    second = MiniBatchContext(job_id="j", mini_batch_id="m1", minibatch_index=1, try_number=1)
    assert first.partition_key_value == {} and first.side_inputs == {}
    assert first.partition_key_value is not second.partition_key_value


def test_try_phase_is_a_str_enum() -> None:
    assert isinstance(TryPhase.TIMEOUT, str) and TryPhase.TIMEOUT.value == "timeout"
    assert TryPhase("crash") is TryPhase.CRASH


@pytest.mark.parametrize(
    ("result", "items", "expected"),
    [
        (["a", "b"], 2, ResultCounts(rows=2, succeeded=2, failed=0)),
        (("a",), 3, ResultCounts(rows=1, succeeded=1, failed=2)),
        ([], 2, ResultCounts(rows=0, succeeded=0, failed=2)),
        (["a", "b", "c", "d"], 2, ResultCounts(rows=4, succeeded=2, failed=0)),
        (pd.DataFrame({"x": [1, 2]}), 3, ResultCounts(rows=2, succeeded=2, failed=1)),
    ],
)
def test_accepted_results_count_rows_as_succeeded_items(
    result: object, items: int, expected: ResultCounts
) -> None:
    assert evaluate_result(result, items) == expected


@pytest.mark.parametrize(
    ("result", "type_name"),
    [
        (None, "NoneType"),
        ((x for x in "ab"), "generator"),
        (iter(["a"]), "list_iterator"),
        ({"a": 1}, "dict"),
        ("ab", "str"),
        (3, "int"),
        (pd.Series([1, 2]), "pandas.Series"),
    ],
)
def test_other_results_are_return_errors_naming_the_type(result: object, type_name: str) -> None:
    error = evaluate_result(result, 2)
    assert isinstance(error, TryError)
    assert error.phase is TryPhase.RETURN
    assert error.message.startswith(f"run() returned {type_name}")
    assert "expected a list, tuple or pandas.DataFrame" in error.message


def test_result_counts_never_go_negative() -> None:
    assert ResultCounts.from_rows(rows=10, items=3) == ResultCounts(10, 3, 0)


def test_failure_outcome_fails_every_item() -> None:
    error = TryError(TryPhase.INIT, "ValueError", "model file missing", "Traceback ...")
    outcome = TryOutcome.failure(error, items=4, seconds=0.5, worker="host:1")
    assert not outcome.ok
    assert (outcome.succeeded, outcome.failed, outcome.rows, outcome.part) == (0, 4, 0, b"")
    assert str(error) == "init: ValueError: model file missing"
