"""Where a job spec meets files and storage: reading its document (YAML or JSON) and
checking ``container/prefix`` paths."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from batchfx.core.errors import SpecError
from batchfx.core.spec_fields import short

__all__ = ["load_yaml", "read_spec_document", "split_source_path", "split_storage_path",
           "storage_path_problem"]

# Values a YAML document may expand to through its aliases (&a ... *a): a few hundred bytes
# of nested aliases ("billion laughs") would otherwise expand to billions, and every check
# that walks them (validation, the messages that quote them) would stall the app.
MAX_YAML_VALUES = 100_000

_CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [k for k, _ in node.value if isinstance(k, yaml.ScalarNode) and k.value != "<<"]
        for index, key in enumerate(keys):
            if key.value in {k.value for k in keys[:index]}:
                problem = f"duplicate key {key.value!r}"
                raise yaml.constructor.ConstructorError(None, None, problem, key.start_mark)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for once its aliases are expanded (memoized)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a node reached again through itself counts once
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = min(size, MAX_YAML_VALUES + 1)
    return sizes[id(node)]


def load_yaml(text: str) -> Any:
    """A YAML document (safe types, no key given twice), refused with yaml.YAMLError when
    its aliases expand to more than MAX_YAML_VALUES values."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_VALUES:
            raise yaml.YAMLError(f"its aliases expand to more than {MAX_YAML_VALUES:,} values; "
                                 "write the values out, or use fewer nested aliases")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_spec_document(file: Path, text: str) -> object:
    """The document in ``text`` (JSON or YAML); SpecError names the file, line and column."""
    # JSON first: JSON indented with tabs is valid JSON but not valid YAML.
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # YAML flow style such as `{name: x}`: let the YAML parser decide
        except RecursionError:
            raise SpecError([f"{file}: nested too deeply to read"]) from None
    try:
        return load_yaml(text)
    except RecursionError:
        raise SpecError([f"{file}: nested too deeply to read"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        reason = getattr(exc, "problem", None) or getattr(exc, "context", None) or exc
        raise SpecError([f"{where}: invalid YAML — {reason}"]) from None


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_MAX_PATH = 1024


def storage_path_problem(path: str) -> str | None:
    """Why ``path`` is not a valid ``container/prefix``, or None when it is."""
    if _URL_RE.match(path):
        return "URLs are not accepted; give container/prefix in the app's storage account"
    if "\\" in path:
        return "backslashes are not allowed; separate container and prefix with '/'"
    if _CONTROL_RE.search(path):
        return "control characters (such as NUL or a line break) are not allowed in a path"
    if len(path) > _MAX_PATH:
        return (f"{len(path)} characters, over the {_MAX_PATH:,} a blob name may have in Azure "
                "storage")
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
    problem = storage_path_problem(path)
    if problem is not None:
        raise SpecError([f"{field}: got {short(path)} — {problem}"])
    container, _, prefix = path.rstrip("/").partition("/")
    return container, prefix


def split_source_path(field: str, path: str) -> tuple[str, str]:
    """Like ``split_storage_path`` for what a job reads (inputs, code, model, side inputs),
    which may also be a folder of this machine: an absolute path, read in place where the
    app allows it (``("", path)``: the local "container")."""
    if path.startswith("/"):
        if _CONTROL_RE.search(path):
            raise SpecError([f"{field}: got {short(path)} — control characters (such as NUL "
                             "or a line break) are not allowed in a path"])
        parts = [p for p in path.split("/") if p]
        if {".", ".."} & set(parts):
            raise SpecError([f"{field}: got {short(path)} — '.' and '..' are not allowed in a "
                             "local path; give the folder's absolute path"])
        return "", "/" + "/".join(parts)
    return split_storage_path(field, path)
