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
import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from batchfx.errors import SpecError
from batchfx.sizes import MiniBatchSize, parse_mini_batch_size

__all__ = ["InputSpec", "JobSpec", "load_job_spec", "parse_job_spec", "split_storage_path"]

_NAME_RE = re.compile(r"^(?=.{3,32}$)[a-z]([-a-z0-9]*[a-z0-9])?$")
_FILE_NAME_RE = re.compile(r"^(?!.*\.\.)(?=.*\S)[^/\\\x00]{1,255}$")  # no '..', not blank
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# v2 name -> v1 name (retry_settings is handled on its own: it is a nested mapping).
V2_ALIASES = {
    "output_file_name": "append_row_file_name",
    "max_concurrency_per_instance": "process_count_per_node",
    "instance_count": "node_count",
}
_RETRY_KEYS = {"max_retries": "run_max_try", "timeout": "run_invocation_timeout"}
_TABULAR = "tabular inputs are not supported yet; use uri_folder or uri_file"
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
    "inputs": "expected a folder (local or container/prefix) or {path, type, glob}, e.g. digits",
    "inputs.path": "expected a non-empty path string, e.g. digits/images",
    "inputs.type": "expected uri_folder or uri_file",
    "inputs.format": f"expected no format: {_TABULAR}",
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


def _storage_path_problem(path: str) -> str | None:
    if _URL_RE.match(path):
        return "URLs are not accepted; give container/prefix in the app's storage account"
    if "\\" in path:
        return "backslashes are not allowed; separate container and prefix with '/'"
    if path.startswith("/"):
        return "expected container/prefix without a leading '/', e.g. results/digits"
    segments = path.rstrip("/").split("/")
    if {"", ".", ".."} & set(segments):
        return "empty, '.' and '..' segments are not allowed; expected container/prefix"
    if not _CONTAINER_RE.match(segments[0]):
        rule = "3 to 63 of a-z, 0-9 and single '-', starting and ending with a-z or 0-9"
        return f"container {segments[0]!r} is not a valid Azure container name: {rule}"
    return None


def split_storage_path(field: str, path: str) -> tuple[str, str]:
    """Split ``container/prefix`` into ``(container, prefix)``; SpecError names ``field``."""
    problem = _storage_path_problem(path)
    if problem is not None:
        raise SpecError([f"{field}: got {_short(path)} — {problem}"])
    container, _, prefix = path.rstrip("/").partition("/")
    return container, prefix


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


def _check_mini_batch_size(value: Any) -> Any:
    parse_mini_batch_size(value, tabular=False)  # tabular inputs are refused, so: files
    return value


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


_NOT_TABULAR = _rule(lambda v: v in ("uri_folder", "uri_file") or _TABULAR)
_SIDE_INPUTS = BeforeValidator(_string_map("side_inputs", convert=False))
_ENVIRONMENT = BeforeValidator(_string_map("environment_variables", convert=True))


class InputSpec(BaseModel):
    """The job's inputs: a folder (``uri_folder``) or one file (``uri_file``) of blobs."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: Annotated[str, _rule(_nonblank, "inputs.path")]
    type: Annotated[Literal["uri_folder", "uri_file", "tabular"], _NOT_TABULAR] = "uri_folder"
    format: Annotated[Literal["csv", "parquet", "jsonl"] | None, _NOT_TABULAR] = None
    # An fnmatch pattern on the blob name relative to the prefix; None = every file.
    glob: Annotated[str | None, _rule(_nonblank, "inputs.glob")] = None

    @pydantic.model_validator(mode="after")
    def _glob_needs_folder(self) -> InputSpec:
        if self.glob is not None and self.type == "uri_file":
            message = "glob applies to uri_folder inputs only; remove it or use type: uri_folder"
            raise _Problems([f"inputs.glob: got {_short(self.glob)} — {message}"])
        return self


class JobSpec(BaseModel):
    """A batch inference job, with the names and defaults of Azure ML's ParallelRunConfig."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    name: Annotated[str, _rule(_NAME_RE.match, "name")]
    entry_script: Annotated[str, _rule(_relative_script, "entry_script")]
    source_directory: Annotated[str, _rule(_nonblank, "source_directory")]
    model: Annotated[str | None, _rule(_nonblank, "model")] = None
    inputs: Annotated[InputSpec, BeforeValidator(_folder_string)]
    side_inputs: Annotated[dict[str, str], _SIDE_INPUTS] = Field(default_factory=dict)
    output: Annotated[str | None, _rule(lambda v: _storage_path_problem(v) or True)] = None
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
        if self.output is None and self.output_action == "append_row":
            raise _Problems([_OUTPUT_REQUIRED])
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
    if out.pop("partition_keys", None) is not None:  # null is Azure ML's default: no keys
        problems.append("partition_keys: not supported yet (it is for tabular inputs); remove it")
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [k for k, _ in node.value if isinstance(k, yaml.ScalarNode) and k.value != "<<"]
        for index, key in enumerate(keys):
            if key.value in {k.value for k in keys[:index]}:
                problem = f"duplicate key {key.value!r}"
                raise yaml.constructor.ConstructorError(None, None, problem, key.start_mark)
        return super().construct_mapping(node, deep=deep)


def _read_document(file: Path, text: str) -> object:
    # JSON first: JSON indented with tabs is valid JSON but not valid YAML.
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # YAML flow style such as `{name: x}`: let the YAML parser decide
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        reason = getattr(exc, "problem", None) or getattr(exc, "context", None) or exc
        raise SpecError([f"{where}: invalid YAML — {reason}"]) from None


def load_job_spec(path: str | os.PathLike[str]) -> tuple[JobSpec, Path]:
    """Read a YAML or JSON job spec; returns it and the spec file's folder (for relative paths)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SpecError([f"{file}: cannot read the job spec ({reason})"]) from None
    return parse_job_spec(_read_document(file, text)), file.resolve().parent
