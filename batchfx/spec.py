"""The job spec: Azure ML ParallelRunConfig names (v2 names as aliases), validated on parse."""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import pydantic
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from batchfx.errors import SpecError
from batchfx.sizes import MiniBatchSize, parse_mini_batch_size
from batchfx.spec_io import read_spec_document, split_storage_path, storage_path_problem

__all__ = ["InputSpec", "JobSpec", "load_job_spec", "parse_job_spec", "split_storage_path"]

_NAME_RE = re.compile(r"^(?=.{3,32}$)[a-z]([-a-z0-9]*[a-z0-9])?$")
_FILE_NAME_RE = re.compile(r"^(?!.*\.\.)(?=.*\S)[^/\\\x00]{1,255}$")  # no '..', not blank
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# v2 name -> v1 name (retry_settings is handled on its own: it is a nested mapping).
V2_ALIASES = {
    "output_file_name": "append_row_file_name",
    "max_concurrency_per_instance": "process_count_per_node",
    "instance_count": "node_count",
}
_RETRY_KEYS = {"max_retries": "run_max_try", "timeout": "run_invocation_timeout"}
_FORMATS = "csv, parquet or jsonl"
_SCRIPT_REQUIRED = (
    "entry_script: missing — required, e.g. entry_script: score.py; it may be left out "
    "(with source_directory) only when model is an MLflow model folder (one with an MLmodel "
    "file), which batchfx then scores itself"
)
_OUTPUT_REQUIRED = (
    "output: missing — required when output_action is append_row (the default), "
    "e.g. output: results/digits-nightly; or set output_action: summary_only"
)
_EXPECTED = {
    "name": "expected 3 to 32 of a-z, 0-9 and '-', starting with a letter and not ending "
    "with '-', e.g. digits-nightly",
    "entry_script": "expected a relative path to a .py file in source_directory, e.g. score.py",
    "source_directory": "expected the scoring script's folder as a string, e.g. ./src",
    "model": "expected a folder path string, or leave model out",
    "inputs": "expected a folder (local or container/prefix) or {path, type, format, glob}, "
    "e.g. digits",
    "inputs.path": "expected a non-empty path string, e.g. digits/images",
    "inputs.type": "expected uri_folder, uri_file or tabular",
    "inputs.format": f"expected {_FORMATS} (the file format of a tabular input)",
    "inputs.glob": "expected an fnmatch pattern string such as '*.png'",
    "side_inputs": "expected a mapping of name to path string",
    "output": "expected container/prefix in the app's storage account, e.g. results/digits",
    "error_threshold": "expected an integer ≥ -1 (failed items allowed; -1 = ignore)",
    "allowed_failed_count": "expected an integer ≥ -1 (failed mini-batches allowed; -1 = ignore)",
    "allowed_failed_percent": "expected a number from 0 to 100 (100 = ignore)",
    "output_action": "expected append_row or summary_only",
    "append_row_file_name": "expected a file name without '/', '\\' or '..', e.g. results.txt",
    "output_format": "expected text, csv, parquet or jsonl",
    "append_row_header": "expected true or false",
    "run_invocation_timeout": "expected a whole number of seconds > 0",
    "run_max_try": "expected an integer ≥ 1 (total tries per mini-batch)",
    "process_count_per_node": "expected an integer ≥ 1 (workers per instance)",
    "node_count": "expected an integer ≥ 1 (instances working on the job)",
    "arguments": "expected a list of strings, or one string split like a shell command line",
    "environment_variables": "expected a mapping of variable name to string",
    "logging_level": "expected DEBUG, INFO, WARNING, ERROR or CRITICAL",
    "allow_reuse": "expected true or false",
    "partition_keys": "expected a list of key names (columns, or key=value folder names), "
    "e.g. [store, day]",
}


class _Problems(ValueError):
    """Raised inside validators with complete messages (they already name field and value)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown(path: str, allowed: list[str]) -> str:
    parent, _, key = path.rpartition(".")
    lowered = {name.lower(): name for name in allowed}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.6)
    hint = f"did you mean {lowered[close[0]]!r}? " if close else ""
    what = f"keys of {parent}" if parent else "fields"
    return f"{path}: unknown field — {hint}allowed {what} are: {', '.join(allowed)}"


def _rule(ok: Callable[[Any], object], field: str = "") -> AfterValidator:
    """Refuse a value (None aside) unless ``ok`` gives True; a str is the reason, else _EXPECTED."""

    def check(value: Any) -> Any:
        verdict = True if value is None else ok(value)
        if not verdict or isinstance(verdict, str):
            raise ValueError(verdict or _EXPECTED[field])
        return value

    return AfterValidator(check)


def _nonblank(value: str) -> bool:
    return bool(value.strip())


def _relative_script(value: str) -> bool:
    parts = value.split("/")
    absolute = value.startswith("/") or re.match(r"^[A-Za-z]:", value) is not None
    safe = not absolute and "\\" not in value and ".." not in parts
    return safe and value.endswith(".py") and parts[-1] != ".py"


def _check_mini_batch_size(value: Any, info: pydantic.ValidationInfo) -> Any:
    inputs = info.data.get("inputs")
    if isinstance(inputs, InputSpec):  # otherwise inputs has its own problem, reported apart
        parse_mini_batch_size(value, tabular=inputs.type == "tabular")
    return value


def _key_list(value: Any) -> Any:
    if value is None:  # Azure ML's default: no keys
        return None
    # Azure ML pipeline parameters carry the list as its JSON text: '["store", "day"]'.
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(_EXPECTED["partition_keys"]) from None
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(_EXPECTED["partition_keys"])
    problems: list[str] = []
    for index, key in enumerate(value):
        if not isinstance(key, str) or not key.strip() or "/" in key or "=" in key:
            why = "expected a column or folder key name without '/' or '='"
            problems.append(f"partition_keys[{index}]: got {_short(key)} — {why}")
        elif key in value[:index]:
            problems.append(f"partition_keys[{index}]: {key!r} is given twice — give it once")
    if problems:
        raise _Problems(problems)
    return list(value)


def _string_map(field: str, *, convert: bool) -> Callable[[Any], Any]:
    """A mapping of identifier -> string; with ``convert``, numbers and bools become strings."""

    def check(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError(_EXPECTED[field])
        problems: list[str] = []
        out: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not _IDENT_RE.match(key):
                hint = "a name of letters, digits and '_', not starting with a digit"
                problems.append(f"{field}: got name {_short(key)} — expected {hint}")
            elif isinstance(item, str) and item.strip():
                out[key] = item
            elif convert and isinstance(item, str | int | float):
                out[key] = str(item)
            else:
                kind = "a string (numbers and booleans are converted)" if convert else "a path"
                problems.append(f"{field}.{key}: got {_short(item)} — expected {kind}")
        if problems:
            raise _Problems(problems)
        return out

    return check


def _split_arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split it like a shell command line ({exc})") from None
    if not isinstance(value, list | tuple):
        raise ValueError(_EXPECTED["arguments"])
    problems: list[str] = []
    for index, item in enumerate(value):
        # Numbers are common in argument lists (`[--batch, 32]`); a bool is a YAML accident.
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            problems.append(f"arguments[{index}]: got {_short(item)} — expected a string")
    if problems:
        raise _Problems(problems)
    return [str(item) for item in value]


_Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _logging_level(value: Any) -> Any:
    if isinstance(value, str) and value.upper() in get_args(_Level):
        return value.upper()
    raise ValueError(_EXPECTED["logging_level"])  # shows the value as given, not upper-cased


def _folder_string(value: Any) -> Any:
    if isinstance(value, str) and not _nonblank(value):
        raise ValueError(_EXPECTED["inputs"])
    return {"path": value, "type": "uri_folder"} if isinstance(value, str) else value


_SIDE_INPUTS = BeforeValidator(_string_map("side_inputs", convert=False))
_ENVIRONMENT = BeforeValidator(_string_map("environment_variables", convert=True))


class InputSpec(BaseModel):
    """The job's inputs: a folder (``uri_folder``) or one file (``uri_file``) of blobs, or
    ``tabular`` rows read from CSV, Parquet or JSON-lines files (a folder or one file)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: Annotated[str, _rule(_nonblank, "inputs.path")]
    type: Literal["uri_folder", "uri_file", "tabular"] = "uri_folder"
    format: Literal["csv", "parquet", "jsonl"] | None = None
    # An fnmatch pattern on the blob name relative to the prefix; None = every file.
    glob: Annotated[str | None, _rule(_nonblank, "inputs.glob")] = None

    @pydantic.model_validator(mode="after")
    def _fits_together(self) -> InputSpec:
        problems: list[str] = []
        if self.glob is not None and self.type == "uri_file":
            message = "glob applies to folder inputs (uri_folder, tabular) only; remove it"
            problems.append(f"inputs.glob: got {_short(self.glob)} — {message}")
        if self.type == "tabular" and self.format is None:
            problems.append(f"inputs.format: missing — tabular inputs need format: {_FORMATS}")
        if self.type != "tabular" and self.format is not None:
            why = "format applies to tabular inputs only; add type: tabular or remove format"
            problems.append(f"inputs.format: got {_short(self.format)} — {why}")
        if problems:
            raise _Problems(problems)
        return self


class JobSpec(BaseModel):
    """A batch inference job, with the names and defaults of Azure ML's ParallelRunConfig."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    name: Annotated[str, _rule(_NAME_RE.match, "name")]
    # Both may be left out for an MLflow model folder: batchfx then scores with its own script.
    entry_script: Annotated[str | None, _rule(_relative_script, "entry_script")] = None
    source_directory: Annotated[str | None, _rule(_nonblank, "source_directory")] = None
    model: Annotated[str | None, _rule(_nonblank, "model")] = None
    inputs: Annotated[InputSpec, BeforeValidator(_folder_string)]
    side_inputs: Annotated[dict[str, str], _SIDE_INPUTS] = Field(default_factory=dict)
    output: Annotated[str | None, _rule(lambda v: storage_path_problem(v) or True)] = None
    mini_batch_size: Annotated[int | str, BeforeValidator(_check_mini_batch_size)] = 10
    error_threshold: int = Field(-1, ge=-1)
    allowed_failed_count: int = Field(-1, ge=-1)
    allowed_failed_percent: float = Field(100.0, ge=0, le=100, allow_inf_nan=False)
    output_action: Literal["append_row", "summary_only"] = "append_row"
    append_row_file_name: Annotated[str, _rule(_FILE_NAME_RE.match, "append_row_file_name")] = (
        Field("parallel_run_step.txt", alias="output_file_name")
    )
    output_format: Literal["text", "csv", "parquet", "jsonl"] = "text"
    append_row_header: bool = False
    run_invocation_timeout: int = Field(60, gt=0)
    run_max_try: int = Field(3, ge=1)
    process_count_per_node: int = Field(1, ge=1, alias="max_concurrency_per_instance")
    node_count: int = Field(1, ge=1, alias="instance_count")
    arguments: Annotated[list[str], BeforeValidator(_split_arguments)] = Field(default_factory=list)
    environment_variables: Annotated[dict[str, str], _ENVIRONMENT] = Field(default_factory=dict)
    logging_level: Annotated[_Level, BeforeValidator(_logging_level)] = "INFO"
    allow_reuse: bool = True
    # Rows (tabular: columns or key=value folders) or files (key=value folders) sharing these
    # keys' values go to the same mini-batches, never mixed with other values.
    partition_keys: Annotated[list[str] | None, BeforeValidator(_key_list)] = None

    @property
    def mini_batch_limit(self) -> MiniBatchSize:
        """``mini_batch_size`` parsed: a file count or a byte size."""
        return parse_mini_batch_size(self.mini_batch_size, tabular=self.inputs.type == "tabular")

    def to_record(self) -> dict[str, Any]:
        """Canonical JSON-able dict: v1 names, defaults filled."""
        return self.model_dump(mode="json")

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> JobSpec:
        """Rebuild a spec stored with :meth:`to_record` (validated again)."""
        return parse_job_spec(record)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _accept_v2_names(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        cleaned, problems, _ = _normalise(data)
        if problems:
            raise _Problems(problems)
        return cleaned

    @pydantic.model_validator(mode="after")
    def _output_needed(self) -> JobSpec:
        if self.entry_script is None and (self.source_directory is not None or not self.model):
            raise _Problems([_SCRIPT_REQUIRED])
        if self.entry_script is not None and self.source_directory is None:
            raise _Problems(["source_directory: missing — required with entry_script: the "
                             "folder holding the script, e.g. source_directory: ./src"])
        if self.output is None and self.output_action == "append_row":
            raise _Problems([_OUTPUT_REQUIRED])
        if self.partition_keys and self.inputs.type == "uri_file":
            why = ("a uri_file input is one file; use a uri_folder with key=value folders, or "
                   "type: tabular, or remove partition_keys")
            raise _Problems([f"partition_keys: got {_short(self.partition_keys)} — {why}"])
        return self


_TOP_FIELDS = [*JobSpec.model_fields, *V2_ALIASES, "retry_settings"]


def _normalise(data: Mapping[Any, Any]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Map v2 names onto v1 names; returns (data, problems, labels of fields given by v2 name)."""
    problems: list[str] = []
    labels: dict[str, str] = {}
    out = {str(k): v for k, v in data.items() if k not in V2_ALIASES and k != "retry_settings"}
    sources = [(V2_ALIASES[k], k, v) for k, v in data.items() if k in V2_ALIASES]
    retry = data.get("retry_settings", {})
    if not isinstance(retry, Mapping):
        expected = "expected a mapping like {max_retries: 3, timeout: 60}"
        problems.append(f"retry_settings: got {_short(retry)} — {expected}")
        retry = {}
    for key, value in retry.items():
        if key in _RETRY_KEYS:
            sources.append((_RETRY_KEYS[key], f"retry_settings.{key}", value))
        else:
            problems.append(_unknown(f"retry_settings.{key}", list(_RETRY_KEYS)))
    for v1, source, value in sources:
        if v1 not in out:
            labels[v1] = f"{v1} (given as {source})"
            out[v1] = value
        elif (type(out[v1]), out[v1]) != (type(value), value):
            both = f"both given ({_short(out[v1])} and {_short(value)}) — give only one"
            problems.append(f"{v1} and {source}: {both}; {source} is the v2 name of {v1}")
    inputs = out.get("inputs")
    if isinstance(inputs, Mapping) and inputs.get("type") == "tabular":
        out.setdefault("mini_batch_size", "1MB")  # Azure ML's tabular default
    return out, problems, labels


def _messages(exc: pydantic.ValidationError, labels: Mapping[str, str]) -> list[str]:
    messages: list[str] = []
    for err in exc.errors(include_url=False):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        label = labels.get(path, path)
        error = err.get("ctx", {}).get("error")
        if isinstance(error, _Problems):
            messages.extend(error.problems)
        elif err["type"] == "missing":
            messages.append(f"{label}: missing — required, {_EXPECTED.get(path, 'see the docs')}")
        elif err["type"] == "extra_forbidden":
            inner = path.startswith("inputs.")
            messages.append(_unknown(path, list(InputSpec.model_fields) if inner else _TOP_FIELDS))
        elif not path:
            messages.append(str(error or err["msg"]))
        else:
            detail = str(error) if error is not None else _EXPECTED.get(path, err["msg"].lower())
            messages.append(f"{label}: got {_short(err['input'])} — {detail}")
    return messages


def parse_job_spec(data: object) -> JobSpec:
    """Validate a job spec mapping; SpecError lists one message per problem."""
    if not isinstance(data, Mapping):
        expected = "expected a mapping of field names to values, e.g. name: digits-nightly"
        raise SpecError([f"job spec: got {type(data).__name__} {_short(data)} — {expected}"])
    cleaned, problems, labels = _normalise(data)
    # Checked here as well as in the model so it is reported together with the other problems.
    if cleaned.get("output") is None and cleaned.get("output_action", "append_row") == "append_row":
        problems.append(_OUTPUT_REQUIRED)
    try:
        spec = JobSpec.model_validate(cleaned)
    except pydantic.ValidationError as exc:
        problems.extend(_messages(exc, labels))
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
    return spec


def load_job_spec(path: str | os.PathLike[str]) -> tuple[JobSpec, Path]:
    """Read a YAML or JSON job spec; returns it and the spec file's folder (for relative paths)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SpecError([f"{file}: cannot read the job spec ({reason})"]) from None
    return parse_job_spec(read_spec_document(file, text)), file.resolve().parent
