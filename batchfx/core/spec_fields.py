"""The job spec's field rules: expected-value texts, validators and the helpers that
word their messages (each names the field, the value and what is allowed)."""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

import pydantic
from pydantic import AfterValidator, BeforeValidator

__all__ = [
    "ENVIRONMENT",
    "EXPECTED",
    "FILE_NAME_RE",
    "FORMATS",
    "NAME_RE",
    "OUTPUT_REQUIRED",
    "SCRIPT_REQUIRED",
    "SIDE_INPUTS",
    "Level",
    "Problems",
    "error_path",
    "folder_string",
    "key_list",
    "model_list",
    "nonblank",
    "output_option_problems",
    "problem_messages",
    "relative_script",
    "rule",
    "short",
    "split_arguments",
    "unknown_field",
    "upper_logging_level",
]

NAME_RE = re.compile(r"^(?=.{3,32}$)[a-z]([-a-z0-9]*[a-z0-9])?$")
# A file name: no '/', '\', '..' or control characters, not blank, not only dots.
FILE_NAME_RE = re.compile(r"^(?!\.+$)(?!.*\.\.)(?=.*\S)[^/\\\x00-\x1f\x7f]{1,255}$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

FORMATS = "csv, parquet or jsonl"
SCRIPT_REQUIRED = (
    "entry_script: missing — required, e.g. entry_script: score.py; it may be left out "
    "(with source_directory) only when model is an MLflow model folder (one with an MLmodel "
    "file), which batchfx then scores itself"
)
OUTPUT_REQUIRED = (
    "output: missing — required when output_action is append_row (the default) or "
    "per_input_file, e.g. output: results/digits-nightly; or set output_action: summary_only"
)
EXPECTED = {
    "name": "expected 3 to 32 of a-z, 0-9 and '-', starting with a letter and not ending "
    "with '-', e.g. digits-nightly",
    "entry_script": "expected a relative path to a .py file in source_directory, e.g. score.py",
    "source_directory": "expected the scoring script's folder as a string, e.g. ./src",
    "model": "expected a folder path or a registered model (name:version, "
    "azureml:name@latest), or leave model out",
    "inputs": "expected a folder (local or container/prefix) or {path, type, format, glob}, "
    "e.g. digits",
    "inputs.path": "expected a non-empty path string, e.g. digits/images",
    "inputs.type": "expected uri_folder, uri_file or tabular",
    "inputs.format": f"expected {FORMATS} (the file format of a tabular input)",
    "inputs.glob": "expected an fnmatch pattern string such as '*.png'",
    "inputs.name": "expected up to 64 of letters, digits, '_' and '-', starting with a letter "
    "or '_', e.g. images",
    "model.path": "expected a non-empty folder path, e.g. ./model",
    "model.name": "expected 1 to 255 of letters, digits, '-', '_' and '.', starting with a "
    "letter or digit, e.g. digits-clf",
    "side_inputs": "expected a mapping of name to path string",
    "output": "expected container/prefix in the app's storage account, e.g. results/digits",
    "error_threshold": "expected an integer ≥ -1 (failed items allowed; -1 = ignore)",
    "allowed_failed_count": "expected an integer ≥ -1 (failed mini-batches allowed; -1 = ignore)",
    "allowed_failed_percent": "expected a number from 0 to 100 (100 = ignore)",
    "output_action": "expected append_row, summary_only or per_input_file",
    "append_row_file_name": "expected a file name without '/', '\\', '..' or control "
    "characters, not only dots, e.g. results.txt",
    "output_format": "expected text, csv, parquet or jsonl",
    "append_row_header": "expected true or false",
    "run_invocation_timeout": "expected a whole number of seconds > 0",
    "run_max_try": "expected an integer ≥ 1 (total tries per mini-batch)",
    "process_count_per_node": "expected an integer ≥ 1 (workers per instance)",
    "node_count": "expected an integer ≥ 1 (instances working on the job)",
    "description": "expected text of at most 2,000 characters",
    "compute_target": "expected the name of a compute target (accepted, not applied)",
    "arguments": "expected a list of strings, or one string split like a shell command line",
    "environment_variables": "expected a mapping of variable name to string",
    "logging_level": "expected DEBUG, INFO, WARNING, ERROR or CRITICAL",
    "allow_reuse": "expected true or false",
    "join_input": "expected true or false",
    "partition_output": "expected true or false",
    "partition_keys": "expected a list of key names (columns, or key=value folder names), "
    "e.g. [store, day]",
}


class Problems(ValueError):
    """Raised inside validators with complete messages (they already name field and value)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unknown_field(path: str, allowed: Sequence[str], what: str | None = None, *,
                  fold_case: bool = True) -> str:
    """``path: unknown field — did you mean …? allowed WHAT are: …`` (WHAT: the keys of the
    parent, or the fields); ``fold_case`` False matches the closest name case-sensitively."""
    parent, _, key = path.rpartition(".")
    names = {(name.lower() if fold_case else name): name for name in allowed}
    close = difflib.get_close_matches(key.lower() if fold_case else key, list(names), n=1,
                                      cutoff=0.6)
    hint = f"did you mean {names[close[0]]!r}? " if close else ""
    what = what or (f"keys of {parent}" if parent else "fields")
    return f"{path}: unknown field — {hint}allowed {what} are: {', '.join(allowed)}"


def error_path(loc: Sequence[int | str], prefix: str = "") -> str:
    """A pydantic error location as batchfx names fields: ``inputs[1].glob``, ``settings.x``."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    return f"{prefix}{path}" if prefix else path.lstrip(".")


# The errors of a key that names no field (one not allowed, or not even a string).
_NO_FIELD = ("extra_forbidden", "invalid_key")


def problem_messages(exc: pydantic.ValidationError, *, unknown: Callable[[str], str],
                     labels: Mapping[str, str] | None = None,
                     expected: Mapping[str, str] = EXPECTED, prefix: str = "",
                     unknown_first: bool = False) -> list[str]:
    """One message per error of ``exc``, each naming the field, the value and what is allowed.

    A :class:`Problems` raised in a validator gives its own messages; a field not allowed is
    worded by ``unknown`` (given its path); a missing one, and one of the wrong type, by the
    text ``expected`` has for its path. Paths are dotted (``prefix`` first), and a field is
    named by its label where ``labels`` has one. ``unknown_first`` reports the fields not
    allowed before the other problems (in the order they were given).
    """
    errors = exc.errors(include_url=False)
    if unknown_first:
        errors = sorted(errors, key=lambda err: err["type"] not in _NO_FIELD)
    messages: list[str] = []
    for err in errors:
        path = error_path(err["loc"], prefix)
        label = (labels or {}).get(path, path)
        error = err.get("ctx", {}).get("error")
        if isinstance(error, Problems):
            messages.extend(error.problems)
        elif err["type"] == "missing":
            messages.append(f"{label}: missing — required, {expected.get(path, 'see the docs')}")
        elif err["type"] in _NO_FIELD:
            messages.append(unknown(path))
        elif not path:
            messages.append(str(error or err["msg"]))
        else:
            detail = str(error) if error is not None else expected.get(path, err["msg"].lower())
            messages.append(f"{label}: got {short(err['input'])} — {detail}")
    return messages


def rule(ok: Callable[[Any], object], field: str = "") -> AfterValidator:
    """Refuse a value (None aside) unless ``ok`` gives True; a str is the reason, else EXPECTED."""

    def check(value: Any) -> Any:
        verdict = True if value is None else ok(value)
        if not verdict or isinstance(verdict, str):
            raise ValueError(verdict or EXPECTED[field])
        return value

    return AfterValidator(check)


def nonblank(value: str) -> bool:
    return bool(value.strip())


def relative_script(value: str) -> bool:
    parts = value.split("/")
    absolute = value.startswith("/") or re.match(r"^[A-Za-z]:", value) is not None
    safe = not absolute and "\\" not in value and ".." not in parts
    return safe and value.endswith(".py") and parts[-1] != ".py"


def key_list(value: Any) -> Any:
    if value is None:  # Azure ML's default: no keys
        return None
    # Azure ML pipeline parameters carry the list as its JSON text: '["store", "day"]'.
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(EXPECTED["partition_keys"]) from None
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(EXPECTED["partition_keys"])
    problems: list[str] = []
    for index, key in enumerate(value):
        if not isinstance(key, str) or not key.strip() or "/" in key or "=" in key:
            why = "expected a column or folder key name without '/' or '='"
            problems.append(f"partition_keys[{index}]: got {short(key)} — {why}")
        elif key in value[:index]:
            problems.append(f"partition_keys[{index}]: {key!r} is given twice — give it once")
    if problems:
        raise Problems(problems)
    return list(value)


def string_map(field: str, *, convert: bool) -> Callable[[Any], Any]:
    """A mapping of identifier -> string; with ``convert``, numbers and bools become strings."""

    def check(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError(EXPECTED[field])
        problems: list[str] = []
        out: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not _IDENT_RE.match(key):
                hint = "a name of letters, digits and '_', not starting with a digit"
                problems.append(f"{field}: got name {short(key)} — expected {hint}")
            elif isinstance(item, str) and item.strip():
                out[key] = item
            elif convert and isinstance(item, str | int | float):
                out[key] = str(item)
            else:
                kind = "a string (numbers and booleans are converted)" if convert else "a path"
                problems.append(f"{field}.{key}: got {short(item)} — expected {kind}")
        if problems:
            raise Problems(problems)
        return out

    return check


def split_arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split it like a shell command line ({exc})") from None
    if not isinstance(value, list | tuple):
        raise ValueError(EXPECTED["arguments"])
    problems: list[str] = []
    for index, item in enumerate(value):
        # Numbers are common in argument lists (`[--batch, 32]`); a bool is a YAML accident.
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            problems.append(f"arguments[{index}]: got {short(item)} — expected a string")
    if problems:
        raise Problems(problems)
    return [str(item) for item in value]


Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def upper_logging_level(value: Any) -> Any:
    if isinstance(value, str) and value.upper() in get_args(Level):
        return value.upper()
    raise ValueError(EXPECTED["logging_level"])  # shows the value as given, not upper-cased


def model_list(value: Any) -> Any:
    """``models``: a list of non-blank strings or ``{path, name}`` mappings (one string or
    mapping is taken as a list of one)."""
    if isinstance(value, str | dict):
        value = [value]
    if not isinstance(value, list) or not all(
            (isinstance(v, str) and nonblank(v)) or isinstance(v, dict) for v in value):
        raise ValueError("expected a list of folder paths, registered models or {path, name} "
                         "mappings, e.g. [azureml:digits-clf:2, {path: ./labels, name: labels}]")
    seen = [json.dumps(v, sort_keys=True, default=str) for v in value]
    if len(set(seen)) != len(seen):
        raise ValueError("a model is listed twice; list each once")
    return value


def folder_string(value: Any) -> Any:
    if isinstance(value, str) and not nonblank(value):
        raise ValueError(EXPECTED["inputs"])
    return {"path": value, "type": "uri_folder"} if isinstance(value, str) else value


SIDE_INPUTS = BeforeValidator(string_map("side_inputs", convert=False))
ENVIRONMENT = BeforeValidator(string_map("environment_variables", convert=True))


def output_option_problems(*, tabular: bool, output_action: str, join_input: bool,
                           partition_output: bool, partition_keys: list[str] | None
                           ) -> list[str]:
    """What is wrong with how the output options combine (one message per problem)."""
    problems: list[str] = []
    if join_input and not tabular:
        why = ("input columns can be joined for tabular inputs (inputs.type: tabular) only; "
               "for file inputs return the columns you need from run(), or remove join_input")
        problems.append(f"join_input: got True — {why}")
    elif join_input and output_action == "summary_only":
        why = ("summary_only writes no rows to join them to; use output_action append_row or "
               "per_input_file, or remove join_input")
        problems.append(f"join_input: got True — {why}")
    if partition_output and not partition_keys:
        why = ("partitioning the output needs partition_keys (its folders are k=v of the "
               "keys), e.g. partition_keys: [store]; or remove partition_output")
        problems.append(f"partition_output: got True — {why}")
    elif partition_output and output_action != "append_row":
        why = (f"it splits the append_row file, and output_action is {output_action}; use "
               "output_action: append_row or remove partition_output")
        problems.append(f"partition_output: got True — {why}")
    return problems


def not_utf8(value: object, path: str = "") -> list[str]:
    """Problems for text that cannot be UTF-8 (lone surrogates, as a JSON ``\\udcff`` escape
    or a file name of undecodable bytes gives): blob names and values must be UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            where = path or "job spec"
            return [f"{where}: got {value!r} — not valid UTF-8 text (character "
                    f"{value[exc.start]!r} at position {exc.start}); blob names and values "
                    "must be UTF-8: rename the blob or file, or fix the text"]
        return []
    if isinstance(value, Mapping):
        found = []
        for key, item in value.items():
            label = f"{path}.{key}" if path else str(key)
            found += not_utf8(key, f"{label} (the key)") + not_utf8(item, label)
        return found
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in not_utf8(item, f"{path}[{i}]")]
    return []

