"""A scoring script's own packages, as Azure ML users write them (pure: no storage).

A job, deployment or pipeline may name an ``environment``:

- ``{conda_file: conda.yml}`` (Azure ML v2; ``image`` beside it is accepted and not
  applied): its ``pip:`` section is installed and its ``python`` version checked against
  the app's; any other conda package is refused by name, since batchfx installs with pip;
- ``requirements.txt`` (a file) or ``{pip: [scikit-learn==1.5.2, joblib]}``, an inline list;
- a registered Azure ML environment (``azureml:name:version``) is refused: batchfx cannot
  fetch it.

The CLI reads a file it names (relative to the spec) and submits its content
(``inline_environment_files``); a job submitted over HTTP gives the content inline. An
environment is identified by its content (``Environment.key``) and built once per key
(``environment_builder``).
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batchfx.core.errors import SpecError
from batchfx.core.spec_fields import short

__all__ = ["Environment", "inline_environment_files", "parse_environment",
           "read_environment_files"]

# Keys of an environment mapping that describe it but change nothing batchfx builds.
_DESCRIPTIVE = ("name", "version", "description", "tags", "image", "build", "os_type",
                "inference_config")
_FILE_KEYS = ("conda_file", "requirements")
_CONDA_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$")


@dataclass(frozen=True)
class Environment:
    """What the script process gets on top of the app's packages: pip requirement lines."""

    requirements: tuple[str, ...]
    python: str | None = None  # major.minor the conda file asked for (checked, not chosen)

    @property
    def key(self) -> str:
        """Content hash, with this Python and platform: one build serves every job of it."""
        runtime = f"{sys.version_info.major}.{sys.version_info.minor}-{platform.machine()}"
        blob = json.dumps([list(self.requirements), runtime], separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def to_record(self) -> dict[str, Any]:
        """The normalised form kept in the job's spec (parses back to the same)."""
        return {"pip": list(self.requirements),
                **({"python": self.python} if self.python else {})}


def _requirement_lines(value: Any, field: str, problems: list[str]) -> list[str]:
    if isinstance(value, str):
        value = value.splitlines()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{field}: got {short(value)} — expected a list of pip requirements "
                        "such as [scikit-learn==1.5.2, joblib]")
        return []
    lines = [v.split("#", 1)[0].strip() for v in value]
    for line in lines:
        if line.startswith("-"):
            problems.append(f"{field}: {line!r} — pip options are not taken from a job; give "
                            "plain requirements (a private index is the app setting "
                            "BATCHFX_PIP_INDEX_URL)")
    return [line for line in lines if line and not line.startswith("-")]


def _python_of(spec: str) -> str:
    version = spec.lstrip("=<>!~ ").split("=")[0].strip()
    return ".".join(version.split(".")[:2])


def _conda(value: Any, field: str, problems: list[str]) -> tuple[list[str], str | None]:
    """The pip requirements and Python version of a conda environment file's content."""
    if not isinstance(value, Mapping):
        problems.append(f"{field}: got {short(value)} — expected a conda environment file "
                        "(its path, read by the CLI) or its content, a mapping with "
                        "dependencies")
        return [], None
    requirements: list[str] = []
    python = None
    for i, dependency in enumerate(value.get("dependencies") or []):
        where = f"{field}.dependencies[{i}]"
        if isinstance(dependency, Mapping) and set(dependency) == {"pip"}:
            requirements += _requirement_lines(dependency["pip"], f"{where}.pip", problems)
            continue
        match = _CONDA_NAME.match(dependency) if isinstance(dependency, str) else None
        if match is None:
            problems.append(f"{where}: got {short(dependency)} — expected a conda package "
                            "or {pip: [...]}")
        elif match.group(1) == "python":
            python = _python_of(match.group(2)) or None
        elif match.group(1) != "pip":
            problems.append(
                f"{where}: conda package {dependency!r} — batchfx installs the pip: section "
                "only (into the script's process, beside the app's packages); list it under "
                "pip: by its PyPI name, or leave it out if the app already has it")
    return requirements, python


def parse_environment(value: Any, field: str = "environment") -> Environment | None:
    """The environment a spec names (None: the app's packages only); SpecError names what
    is wrong and how to fix it."""
    if value is None:
        return None
    problems: list[str] = []
    if isinstance(value, str):
        if value.strip().startswith("azureml:") or not value.endswith((".txt", ".yml",
                                                                       ".yaml")):
            raise SpecError([
                f"{field}: {value!r} names a registered Azure ML environment, which batchfx "
                "cannot fetch — give the conda file it was built from ({conda_file: "
                "conda.yml}) or a requirements list ({pip: [...]})"])
        raise SpecError([
            f"{field}: {value!r} is a file — the CLI reads it for you (batchfx run, submit, "
            "deployment create); over HTTP give its content: {conda_file: {dependencies: "
            "[...]}} or {pip: [...]}"])
    if isinstance(value, list):
        value = {"pip": value}
    if not isinstance(value, Mapping):
        raise SpecError([f"{field}: got {short(value)} — expected {{conda_file: conda.yml}}, "
                         "a requirements file, or {pip: [...]}"])
    known = ("conda_file", "pip", "requirements", "python", *_DESCRIPTIVE)
    problems += [f"{field}.{k}: unknown — expected one of conda_file, pip, requirements"
                 for k in value if k not in known]
    requirements: list[str] = []
    python = value.get("python")
    if isinstance(value.get("conda_file"), str):
        problems.append(f"{field}.conda_file: {value['conda_file']!r} is a file — the CLI "
                        "reads it for you; over HTTP give its content")
    elif value.get("conda_file") is not None:
        found, python = _conda(value["conda_file"], f"{field}.conda_file", problems)
        requirements += found
    for key in ("pip", "requirements"):
        if value.get(key) is not None:
            requirements += _requirement_lines(value[key], f"{field}.{key}", problems)
    if python is not None and not isinstance(python, str):
        python = str(python)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if python and python != running:
        problems.append(f"{field}: asks for Python {python} — the app runs Python {running}, "
                        "and a script runs with the app's Python; ask for python="
                        f"{running} (or none)")
    if problems:
        raise SpecError(problems)
    if not requirements:
        return None
    return Environment(tuple(dict.fromkeys(requirements)), python)


def inline_environment_files(value: Any, read: Callable[[str], str],
                             load_yaml: Callable[[str], Any]) -> Any:
    """``value`` with the files it names read in (the CLI's side of ``parse_environment``):
    ``conda.yml``/``requirements.txt``, or ``{conda_file: path}``/``{requirements: path}``.
    ``read`` reads a file by the name given (relative to the spec)."""
    if isinstance(value, str) and value.endswith((".yml", ".yaml")) \
            and not value.startswith("azureml:"):
        return {"conda_file": load_yaml(read(value))}
    if isinstance(value, str) and value.endswith(".txt"):
        return {"pip": read(value).splitlines()}
    if isinstance(value, Mapping):
        out = dict(value)
        for key in _FILE_KEYS:
            if isinstance(out.get(key), str) and not out[key].count("\n"):
                text = read(out[key])
                out[key] = load_yaml(text) if key == "conda_file" else text.splitlines()
        return out
    return value


def read_environment_files(document: Any, folder: Path,
                           load_yaml: Callable[[str], Any]) -> Any:
    """A spec or deployment document with its ``environment`` files read in, relative to
    ``folder`` (the document's); SpecError names a file that cannot be read."""
    if not isinstance(document, Mapping) or document.get("environment") is None:
        return document

    def read(name: str) -> str:
        path = folder / name
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise SpecError([f"environment: cannot read {name!r} (looked for {path}: "
                             f"{reason}) — fix the path, relative to the spec file"]) from None

    try:
        value = inline_environment_files(document["environment"], read, load_yaml)
    except (ValueError, yaml.YAMLError) as exc:  # a conda file that is not YAML
        raise SpecError([f"environment: the conda file is not YAML ({exc})"]) from None
    return {**document, "environment": value}
