"""The GPU scorer image's build context, with a job's or deployment's environment baked in.

``infra/gpu/Dockerfile`` builds the scorer-only image from batchfx's source checkout and
installs ``infra/gpu/scorer-requirements.txt`` first. ``build_context`` copies what that
Dockerfile reads into a folder of its own and fills the requirements file with the pip
requirements of a spec's ``environment``, so a deployment's packages are in the image
instead of being built by the first worker that scores one of its jobs.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from batchfx.core.environments import Environment

__all__ = ["CONTEXT_FILES", "ImageError", "build_context", "image_python",
           "scorer_requirements", "source_root"]

# What infra/gpu/Dockerfile copies from its build context (and the Dockerfile itself).
CONTEXT_FILES = ("pyproject.toml", "README.md", "host.json", "batchfx", "infra/gpu/Dockerfile",
                 "infra/gpu/Dockerfile.dockerignore", "infra/gpu/function_app.py",
                 "infra/gpu/scorer-requirements.txt")
DOCKERFILE = "infra/gpu/Dockerfile"
REQUIREMENTS = "infra/gpu/scorer-requirements.txt"
_BASE_PYTHON = re.compile(r"^FROM\s+\S*python[^\s:]*:\S*?python(\d+\.\d+)", re.MULTILINE)


class ImageError(Exception):
    """The build context cannot be written: what is wrong and how to fix it."""


def source_root() -> Path:
    """batchfx's source checkout (the image is built from it), or ImageError."""
    root = Path(__file__).resolve().parents[2]
    missing = [name for name in CONTEXT_FILES if not (root / name).exists()]
    if missing:
        raise ImageError(f"the GPU image is built from batchfx's source checkout, and {root} "
                         f"lacks {', '.join(missing)}: run batchfx from a clone of its "
                         "repository (pip install -e .)")
    return root


def image_python(dockerfile: str) -> str | None:
    """The Python (major.minor) of the Functions base image a Dockerfile starts FROM."""
    found = _BASE_PYTHON.search(dockerfile)
    return found.group(1) if found else None


def scorer_requirements(environment: Environment | None, python: str | None) -> str:
    """The requirements file for the image: the environment's pip lines (none: empty)."""
    if environment is None:
        return "# The spec names no environment: the script needs batchfx's packages only.\n"
    if environment.python and python and environment.python != python:
        raise ImageError(f"environment: asks for Python {environment.python} — the GPU image "
                         f"runs Python {python} (its base image); ask for python={python} "
                         "(or none)")
    return ("# From the spec's environment (batchfx image); installed before batchfx.\n"
            + "".join(f"{line}\n" for line in environment.requirements))


def build_context(root: Path, out: Path, requirements: str) -> list[str]:
    """Copy what the Dockerfile reads from ``root`` into ``out`` (new, or empty) and write
    the requirements; returns the top-level names written."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ImageError(f"--output {out}: exists and is not an empty folder — name a new one "
                         "(nothing in it was changed)")
    out.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in CONTEXT_FILES:
        source, target = root / name, out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    (out / REQUIREMENTS).write_text(requirements, encoding="utf-8")
    return sorted({name.split("/", 1)[0] for name in CONTEXT_FILES})
