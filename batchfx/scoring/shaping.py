"""Shaping what run() returned before it is formatted. Pure; runs in the scoring child.

``join_input`` puts each input row's columns before the result row run() returned for it
(SageMaker's JoinSource): the input frame's columns, then the result's (a DataFrame's
columns, or one column ``prediction`` for a list). A result column with the name of an
input column keeps its name; the input's column is renamed ``<name>_input``.

``per_input_file`` needs to know which input file each returned row belongs to: row i is
item i (file inputs), or the rows of a tabular frame come in runs, one per slice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from batchfx.core.script_contract import is_dataframe

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "INPUT_SUFFIX",
    "PREDICTION_COLUMN",
    "ShapeError",
    "file_runs",
    "join_input",
    "one_row_per_item",
    "snapshot",
    "source_runs",
]

INPUT_SUFFIX = "_input"
PREDICTION_COLUMN = "prediction"


class ShapeError(ValueError):
    """run()'s result cannot be shaped as the job asks (its message is the try's error)."""


class _Source(Protocol):
    """What ``batchfx.tabular.reading.RowSource`` offers here."""

    @property
    def slice(self) -> int: ...

    @property
    def rows(self) -> int: ...


def one_row_per_item(rows: int, items: int, *, option: str, unit: str) -> None:
    """Refuse a result without exactly one row per input item: ``option`` needs it."""
    if rows != items:
        raise ShapeError(
            f"{option}: run() returned {rows} rows for {items} input {unit}; {option} needs "
            f"exactly one returned row per input {unit.rstrip('s')}, in input order (return a "
            f"row for every input, e.g. with an empty prediction, or remove {option})"
        )


def snapshot(frame: pd.DataFrame) -> pd.DataFrame:
    """The input frame as it was before run() (which may change it in place)."""
    import pandas as pd

    # With copy-on-write (pandas 3, or opted in) a shallow copy is a true snapshot.
    cow = int(pd.__version__.split(".")[0]) >= 3 or pd.options.mode.copy_on_write is True
    return frame.copy(deep=not cow)


def _free_name(name: object, taken: set[object]) -> str:
    candidate = f"{name}{INPUT_SUFFIX}"
    while candidate in taken:
        candidate += INPUT_SUFFIX
    return candidate


def join_input(frame: pd.DataFrame, result: Sequence[Any] | pd.DataFrame) -> pd.DataFrame:
    """The input rows' columns followed by the result's, row by row (lengths must match)."""
    import pandas as pd

    one_row_per_item(len(result), len(frame), option="join_input", unit="rows")
    left = frame.reset_index(drop=True)
    if is_dataframe(result):
        right = result.reset_index(drop=True)
    else:
        right = pd.DataFrame({PREDICTION_COLUMN: list(result)})
    clashes = [c for c in left.columns if c in set(right.columns)]
    if clashes:
        taken: set[object] = {*left.columns, *right.columns}
        renames = {}
        for column in clashes:
            renames[column] = _free_name(column, taken)
            taken.add(renames[column])
        left = left.rename(columns=renames)
    return pd.concat([left, right], axis=1)


def file_runs(items: int) -> list[tuple[int, int]]:
    """(item position, rows) for a file mini-batch: row i is file i."""
    return [(position, 1) for position in range(items)]


def source_runs(sources: Iterable[_Source], rows: int) -> list[tuple[int, int]]:
    """(slice position, rows) of a tabular frame's runs, consecutive runs of one slice (key
    filters give several) merged; they must cover the frame's ``rows``."""
    runs: list[tuple[int, int]] = []
    for source in sources:
        if runs and runs[-1][0] == source.slice:
            runs[-1] = (source.slice, runs[-1][1] + source.rows)
        else:
            runs.append((source.slice, source.rows))
    if sum(count for _, count in runs) != rows:
        raise ShapeError(
            f"per_input_file: the mini-batch's {rows} rows could not be traced to their "
            f"input files (the slices account for {sum(c for _, c in runs)} rows)")
    return runs
