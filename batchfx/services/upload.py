"""Uploading a spec's local folders (code, model, inputs) as content-addressed snapshots."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from batchfx.core.errors import OutputError, SpecError
from batchfx.core.models import map_model_path, parse_model_reference
from batchfx.storage import Storage

__all__ = ["DOWNLOAD_MANIFEST", "download_outputs", "download_problem", "in_place_paths",
           "upload_local_paths", "upload_tree"]

logger = logging.getLogger(__name__)

_THREADS = 8
_SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints"}


def _files(root: Path) -> list[Path]:
    """The files of a folder to upload. A symbolic link is followed only when it stays inside
    the folder (a link to a folder inside is listed there); one leading out, or to nothing,
    is refused naming it: what it points at is not the folder's to upload."""
    if root.is_file():
        return [root]
    real_root = os.path.realpath(root)
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in [*dirs, *names]:
            path = Path(folder) / name
            if path.is_symlink():
                _check_link(path, real_root, root)
        dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink()]
        found += [Path(folder) / n for n in sorted(names) if not n.endswith(".pyc")
                  and not (Path(folder) / n).is_dir()]
    return found


def _check_link(path: Path, real_root: str, root: Path) -> None:
    target = os.path.realpath(path)
    if not os.path.exists(target):
        raise SpecError([f"{path}: a symbolic link to {target}, which does not exist — remove "
                         "the link or restore its target"])
    if target != real_root and not target.startswith(real_root.rstrip("/") + "/"):
        raise SpecError([f"{path}: a symbolic link to {target}, outside the folder {root} — "
                         "copy the file in if it belongs to the upload"])


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of a file name, kept as surrogates
        return False
    return True


def _digest(base: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(base)).encode() + b"\0")
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()[:40]


def upload_folder(storage: Storage, local: Path, kind: str) -> str:
    """Upload a folder (or one file) once per content; returns its ``container/prefix``.

    A model folder keeps its own name as the path's last part (``…/files/model``): Azure ML
    lays a model out under the name of the folder registered (see ``batchfx.core.models``)."""
    files = _files(local)
    base = local if local.is_dir() else local.parent
    if kind == "model":
        base = local.parent
    undecodable = [os.fsencode(p.relative_to(base)) for p in files
                   if not _is_utf8(str(p.relative_to(base)))]
    if undecodable:
        raise SpecError([f"{kind}: local file {name!r} in {str(local)!r} has a name that is not "
                         "valid UTF-8, which a blob name must be; rename it"
                         for name in undecodable[:10]])
    prefix = f"uploads/{kind}/{_digest(base, files)}"
    container = storage.settings.jobs_container
    marker = f"{prefix}/.complete"
    if storage.blobs.exists(container, marker):
        logger.info("%s %s already uploaded as %s", kind, local, prefix)
    else:
        def put(path: Path) -> None:
            relative = path.relative_to(base).as_posix()
            storage.blobs.upload_file(container, f"{prefix}/files/{relative}", str(path))
        with ThreadPoolExecutor(_THREADS) as pool:
            list(pool.map(put, files))
        storage.blobs.upload(container, marker, b"")
        logger.info("uploaded %d files of %s to %s/%s", len(files), local, container, prefix)
    files_prefix = f"{container}/{prefix}/files"
    if local.is_file() or base != local:
        return f"{files_prefix}/{local.name}"
    return files_prefix


_PATH_FIELDS = ("source_directory",)


def _local(value: str | None, spec_dir: Path) -> Path | None:
    """The local file or folder a spec path names (relative to the spec file), if any."""
    if not value:
        return None
    path = Path(value) if os.path.isabs(value) else spec_dir / value
    return path if path.exists() else None


def _each_input(inputs: Any, change: Callable[[str, dict[str, Any]], dict[str, Any]]) -> Any:
    """A record's ``inputs`` (one mapping, or a list of them) with each changed."""
    if isinstance(inputs, list):
        return [change(f"inputs[{i}]", item) for i, item in enumerate(inputs)]
    return change("inputs", inputs)


def _registered(field: str, value: str) -> bool:
    """Whether a model field names a registered model (name:version, azureml:…)."""
    try:
        return parse_model_reference(field, value) is not None
    except SpecError:
        return False


def _missing_local(field: str, value: str, spec_dir: Path) -> str:
    return (f"{field}: {value!r} does not exist (looked for {spec_dir / value}, relative to the "
            "spec file) — fix the path")


def in_place_paths(record: dict[str, Any], spec_dir: Path, *, storage_paths: bool = True
                   ) -> tuple[dict[str, Any], list[str]]:
    """Local paths of a spec record made absolute, to be read in place by an app on this
    machine; returns the record and the folders (or files) it names.

    A path that exists on this machine (relative to the spec file) is local; anything else
    is ``container/prefix`` in the app's storage when ``storage_paths``, else a problem.
    """
    out = dict(record)
    problems: list[str] = []
    folders: list[str] = []

    def place(field: str, value: str | None) -> str | None:
        if not value:
            return value
        path = _local(value, spec_dir)
        if path is None and field.startswith("model") and _registered(field, value):
            return value
        if path is None:
            if not storage_paths:
                problems.append(_missing_local(field, value, spec_dir))
            return value
        absolute = str(path.resolve())
        folders.append(absolute)
        return absolute

    for field in _PATH_FIELDS:
        out[field] = place(field, out.get(field))
    if out.get("model"):
        out["model"] = map_model_path(out["model"], lambda v: place("model", v))
    if isinstance(out.get("models"), list):
        out["models"] = [map_model_path(value, functools.partial(place, f"models[{i}]"))
                         for i, value in enumerate(out["models"])]
    def place_input(field: str, given: dict[str, Any]) -> dict[str, Any]:
        inputs = dict(given)
        data = _local(inputs["path"], spec_dir)
        inputs["path"] = place(f"{field}.path", inputs["path"])
        if data is not None and data.is_file() and inputs.get("type") != "tabular":
            inputs["type"] = "uri_file"  # a tabular input may be one file too
        return inputs

    out["inputs"] = _each_input(out["inputs"], place_input)
    out["side_inputs"] = {name: place(f"side_inputs.{name}", v)
                          for name, v in out.get("side_inputs", {}).items()}
    if problems:
        raise SpecError(problems)
    return out, folders


def upload_local_paths(storage: Storage, record: dict[str, Any], spec_dir: Path) -> dict[str, Any]:
    """Replace local paths in a spec record with uploaded storage paths (for an app that
    does not share this machine).

    A path that exists on this machine (relative to the spec file) is local; anything else
    is taken as ``container/prefix`` in the app's storage account.
    """
    out = dict(record)
    problems = []
    code = _local(out.get("source_directory"), spec_dir)
    if code is not None:
        if out.get("entry_script") and not (code / out["entry_script"]).is_file():
            problems.append(f"entry_script: {out['entry_script']!r} not found in "
                            f"source_directory {str(code)!r}")
        out["source_directory"] = upload_folder(storage, code, "code")
    def upload_model(value: str) -> str:
        local = _local(value, spec_dir)
        return upload_folder(storage, local, "model") if local is not None else value

    if out.get("model"):
        out["model"] = map_model_path(out["model"], upload_model)
    if isinstance(out.get("models"), list):
        out["models"] = [map_model_path(v, upload_model) for v in out["models"]]
    def upload_input(field: str, given: dict[str, Any]) -> dict[str, Any]:
        inputs = dict(given)
        data = _local(inputs["path"], spec_dir)
        if data is not None:
            if data.is_dir() and not any(data.iterdir()):
                problems.append(f"{field}.path: folder {str(data)!r} is empty — zero inputs "
                                "to score")
            inputs["path"] = upload_folder(storage, data, "inputs")
            if data.is_file() and inputs.get("type") != "tabular":
                inputs["type"] = "uri_file"  # a tabular input may be one file too
        return inputs

    out["inputs"] = _each_input(out["inputs"], upload_input)
    out["side_inputs"] = {name: (upload_folder(storage, p, "side")
                                 if (p := _local(v, spec_dir)) else v)
                          for name, v in out.get("side_inputs", {}).items()}
    if problems:
        raise SpecError(problems)
    return out


def upload_tree(storage: Storage, local: Path, container: str, prefix: str
                ) -> tuple[int, int]:
    """Put a local folder (or file) at ``container/prefix`` under the same relative names;
    returns (uploaded, already there). A file whose blob has the same size and MD5 is not
    sent again, so an upload that stopped is finished by running it again."""
    files = _files(local)
    base = local if local.is_dir() else local.parent
    names = {path: "/".join(p for p in (prefix, path.relative_to(base).as_posix()) if p)
             for path in files}
    bad = [str(p.relative_to(base)) for p in files if not _is_utf8(str(p.relative_to(base)))]
    if bad:
        raise SpecError([f"upload: local file {name!r} has a name that is not valid UTF-8, "
                         "which a blob name must be; rename it" for name in bad[:10]])
    storage.blobs.ensure_container(container)
    there = {r.name: (r.size, r.content_md5)
             for r in storage.blobs.list_names(container, f"{prefix}/" if prefix else "")}

    def same(path: Path) -> bool:
        found = there.get(names[path])
        if found is None or found[0] != path.stat().st_size or not found[1]:
            return False
        with open(path, "rb") as stream:
            return hashlib.file_digest(stream, "md5").hexdigest() == found[1]

    todo = [p for p in files if not same(p)]
    with ThreadPoolExecutor(_THREADS) as pool:
        list(pool.map(lambda p: storage.blobs.upload_file(container, names[p], str(p)), todo))
    logger.info("uploaded %d files of %s to %s/%s (%d already there)", len(todo), local,
                container, prefix, len(files) - len(todo))
    return len(todo), len(files) - len(todo)


# Written into a folder a job's outputs were downloaded to: which files came from where, so
# the next download into it replaces exactly those (never a file of the user's).
DOWNLOAD_MANIFEST = ".batchfx-download.json"


def _files_under(dest: Path) -> set[str]:
    return {p.relative_to(dest).as_posix() for p in dest.rglob("*")
            if p.is_file() or p.is_symlink()}


def _earlier_download(dest: Path) -> set[str]:
    try:
        return set(json.loads((dest / DOWNLOAD_MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def download_problem(dest: Path) -> str | None:
    """Why job outputs may not be downloaded into ``dest`` (or None): a folder is used when
    it is new, empty, or holds only an earlier batchfx download (which is replaced)."""
    if not dest.exists():
        return None
    if not dest.is_dir():
        return f"{dest} is a file — name a folder to download the outputs into"
    others = sorted(_files_under(dest) - _earlier_download(dest) - {DOWNLOAD_MANIFEST})
    if not others:
        return None
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    return (f"{dest} holds files that are not an earlier batchfx download ({shown}) — "
            "name an empty or new folder, so no file of yours is overwritten and no two "
            "jobs' outputs mix")


def download_outputs(storage: Storage, location: str, dest: Path) -> list[Path]:
    """Download every blob under ``container/prefix`` into ``dest``; returns the files.

    ``dest`` must be new, empty or an earlier download (``download_problem``): that
    download's files are removed first, so nothing of another job's is left beside these.
    """
    problem = download_problem(dest)
    if problem:
        raise OutputError(problem)
    container, _, prefix = location.partition("/")
    refs = list(storage.blobs.list_names(container, f"{prefix}/"))
    root = dest.resolve()
    targets = []
    for ref in refs:
        target = (dest / ref.name[len(prefix) + 1:]).resolve()
        if not target.is_relative_to(root) or target == root:
            raise OutputError(f"output blob {ref.name!r} would be written outside {dest}")
        targets.append((ref, target))
    for name in _earlier_download(dest):
        earlier = dest / name
        if not earlier.resolve().is_relative_to(root):
            continue  # a manifest naming a file outside the folder is not ours to remove
        with contextlib.suppress(FileNotFoundError):
            earlier.unlink()
    for folder in sorted((p for p in dest.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # left empty by the earlier download
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for ref, target in targets:
        storage.blobs.download_to_file(container, ref.name, str(target))
        written.append(target)
    (dest / DOWNLOAD_MANIFEST).write_text(json.dumps(
        {"location": location, "files": [t.relative_to(root).as_posix() for t in written]},
        indent=1))
    return written
