"""The scoring-script contract: the values that cross between batchfx and a user's script.

Pure: no processes, no Azure. ``evaluate_result`` holds the SPEC's return-value rules
(one element/row per succeeded item, failed = inputs - returned, never negative).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from typing_extensions import TypeIs

__all__ = [
    "OUTPUT_FORMATS",
    "MiniBatchContext",
    "ResultCounts",
    "RunInfo",
    "ScriptConfig",
    "Segment",
    "TryError",
    "TryOutcome",
    "TryPhase",
    "evaluate_result",
    "is_dataframe",
]

OUTPUT_FORMATS = ("text", "csv", "jsonl", "parquet")


@dataclass(frozen=True)
class RunInfo:
    """What azureml.core's ``Run.get_context()`` tells a script about its job (batchfx's
    compatibility layer, ``batchfx.scoring.aml_run``)."""

    job_id: str = ""
    experiment: str = ""
    parent_run_id: str = ""
    # name -> local path of each side input (``Run.input_datasets``)
    input_datasets: tuple[tuple[str, str], ...] = ()
    key_vault_url: str = ""
    secrets_file: str = ""


@dataclass(frozen=True)
class ScriptConfig:
    """How to load and run one scoring script; one child process serves one ``key``."""

    code_dir: str
    entry_script: str
    model_dir: str | None  # AZUREML_MODEL_DIR
    output_dir: str
    arguments: tuple[str, ...] = ()
    environment_variables: tuple[tuple[str, str], ...] = ()
    logging_level: str = "INFO"
    output_format: str = "text"
    append_row_header: bool = False
    log_path: str | None = None
    # The input row's columns go before what run() returned (tabular inputs only).
    join_input: bool = False
    # Attribute returned rows to input files (``TryOutcome.segments``): one row per item.
    per_input_file: bool = False
    # Bytes of formatted rows one run() may return (0: no limit): a runaway result fails
    # the try with a clear error instead of exhausting the worker's memory or the pipe.
    max_output_bytes: int = 0
    # (name, version, path) of each model, for azureml.core's Model.get_model_path.
    models: tuple[tuple[str, int, str], ...] = ()
    run_info: RunInfo = field(default_factory=RunInfo)
    # Folders of the script's own packages (its environment), ahead of the app's.
    python_path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(
                f"output_format: {self.output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}"
            )
        if not self.entry_script:
            raise ValueError("entry_script: please name the scoring script, e.g. 'score.py'")

    @property
    def key(self) -> str:
        """Stable hash of everything that changes what the script sees (``log_path`` excluded)."""
        fields = asdict(self)
        del fields["log_path"]
        blob = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MiniBatchContext:
    """What ``run(mini_batch, context)`` receives, for scripts that ask for it."""

    job_id: str
    mini_batch_id: str
    minibatch_index: int
    try_number: int
    partition_key_value: dict[str, str | None] = field(default_factory=dict)
    side_inputs: dict[str, str] = field(default_factory=dict)


class TryPhase(StrEnum):
    """Where a try of a mini-batch went wrong."""

    LOAD = "load"  # the entry script could not be imported, or has no run()
    INIT = "init"  # init() raised
    RUN = "run"  # run() raised
    TIMEOUT = "timeout"  # init() or run() did not return in time; the process was killed
    CRASH = "crash"  # the worker process died (os._exit, SIGKILL, out of memory)
    RETURN = "return"  # run() returned something the contract does not accept
    INPUT = "input"  # the mini-batch's rows could not be read (corrupt, or changed input)


@dataclass(frozen=True)
class TryError:
    """Why a try failed: the phase, the exception type and message, the script's traceback."""

    phase: TryPhase
    type: str
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.phase.value}: {self.type}: {self.message}"


# (source position, rows, bytes) of a run of consecutive rows of a part that came from one
# input: position = the file's index in the mini-batch's items (file inputs) or the slice's
# in its slices (tabular); bytes are those of the rows in a text part, 0 in a Parquet part.
Segment = tuple[int, int, int]


@dataclass(frozen=True)
class TryOutcome:
    """The result of one try of one mini-batch.

    ``segments`` is filled only for ``per_input_file`` outputs: the part's rows, in order,
    attributed to the inputs they came from.
    """

    items: int
    succeeded: int
    failed: int
    rows: int
    part: bytes
    header: bytes | None
    error: TryError | None
    seconds: float
    worker: str
    segments: tuple[Segment, ...] = ()

    @property
    def ok(self) -> bool:
        """True when run() returned an accepted value (some items may still have failed)."""
        return self.error is None

    @classmethod
    def failure(cls, error: TryError, items: int, seconds: float, worker: str) -> TryOutcome:
        """A try that produced nothing: every item failed."""
        return cls(
            items=items,
            succeeded=0,
            failed=items,
            rows=0,
            part=b"",
            header=None,
            error=error,
            seconds=seconds,
            worker=worker,
        )


@dataclass(frozen=True)
class ResultCounts:
    """How many rows run() returned and what that means for the mini-batch's items."""

    rows: int
    succeeded: int
    failed: int

    @classmethod
    def from_rows(cls, rows: int, items: int) -> ResultCounts:
        """The one place of the rule: each row is a succeeded item, capped at ``items``."""
        failed = max(0, items - rows)
        return cls(rows=rows, succeeded=items - failed, failed=failed)


def is_dataframe(value: object) -> TypeIs[pd.DataFrame]:
    """True for a pandas DataFrame, without importing pandas when nobody else did."""
    pandas: Any = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _type_name(value: object) -> str:
    cls = type(value)
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def evaluate_result(result: object, items: int) -> ResultCounts | TryError:
    """Apply the return-value rules to what run() returned for ``items`` inputs."""
    if isinstance(result, list | tuple) or is_dataframe(result):
        return ResultCounts.from_rows(len(result), items)
    return TryError(
        phase=TryPhase.RETURN,
        type="TypeError",
        message=(
            f"run() returned {_type_name(result)}; expected a list, tuple or pandas.DataFrame"
            " with one element/row per succeeded item"
        ),
        traceback="",
    )
