"""Bringing a job's code, model and inputs from Blob storage onto the worker's disk."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from batchfx.core.errors import InputError
from batchfx.storage import LOCAL, BlobRef, Storage
from batchfx.storage.local_files import file_version

__all__ = ["changed_local_items", "download_items", "folder_version", "local_folder",
           "local_items", "local_name", "stage_folder"]

logger = logging.getLogger(__name__)

_DOWNLOAD_THREADS = 8
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _downloads() -> ThreadPoolExecutor:
    """One download pool per process: starting threads per mini-batch costs more than I/O."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_DOWNLOAD_THREADS, thread_name_prefix="batchfx-download")
        return _pool


def local_name(prefix: str, blob_name: str) -> str:
    """A blob's path relative to its input prefix (kept, so same-named files never collide)."""
    base = f"{prefix}/" if prefix else ""
    relative = blob_name[len(base):] if base and blob_name.startswith(base) else blob_name
    parts = [p for p in relative.split("/") if p not in ("", ".", "..")]
    return os.path.join(*parts) if parts else "item"


def folder_version(storage: Storage, container: str, prefix: str) -> tuple[str, list[BlobRef]]:
    """A hash of a folder's listing (names and versions: ETags, or local file versions)
    and the listing; any change of a file changes it."""
    base = f"{prefix}/" if prefix else ""
    if container == LOCAL and os.path.isfile(prefix):
        base = prefix  # one file (a model may be)
    files = storage.files(container)
    refs = sorted(files.list_names(container, base), key=lambda r: r.name)
    if not refs and prefix and container != LOCAL:  # one blob (a model may be)
        refs = [r for r in files.list_names(container, prefix) if r.name == prefix]
    refs = [r for r in refs if not _skipped(r.name[len(prefix):])]
    signature = hashlib.sha256()
    signature.update(f"{container}/{prefix}".encode())
    for ref in refs:
        signature.update(f"\n{ref.name}\t{ref.etag}".encode())
    return signature.hexdigest()[:32], refs


def _skipped(relative: str) -> bool:
    """Python's byte-code caches: written by imports, never part of a code folder's version."""
    return "/__pycache__/" in f"/{relative}" or relative.endswith(".pyc")


def stage_folder(storage: Storage, container: str, prefix: str, cache_root: str,
                 pinned: str | None = None, *, read_only: bool = False,
                 before_use: Callable[[str], None] | None = None) -> str:
    """Fetch a folder once per content version; later calls reuse the local copy.

    The cache key is the listing's names and versions, so a changed folder is fetched
    again, and the copy is moved into place atomically so two workers never see half of
    it. With ``pinned`` (the version recorded when the job was submitted), a folder that
    changed since fails with InputError instead of running other code than submitted.
    ``read_only``: the files are made read-only (models and side inputs, which every
    mini-batch and job of this version shares; a script writing there gets an error).
    ``before_use``: called with the version before the copy is looked for (a shared
    cache records its user first: ``work_cache.note_use``).
    """
    version, refs = folder_version(storage, container, prefix)
    _check_pin(prefix, version, pinned)
    if before_use is not None:
        before_use(version)
    target = os.path.join(cache_root, version)
    one_file = [r.name for r in refs] == [prefix] and bool(prefix)
    parent = prefix  # what downloaded names are relative to
    if one_file:
        parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    found = os.path.join(target, local_name(parent, prefix)) if one_file else target
    if os.path.isdir(target):
        return found
    os.makedirs(cache_root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=cache_root)
    try:
        download_items(storage, container, parent, refs, staging)
        if read_only:
            for folder, _, names in os.walk(staging):
                for name in names:
                    os.chmod(os.path.join(folder, name), 0o444)
        with _lock:
            try:
                os.rename(staging, target)
            except OSError:  # another worker placed the same version first
                shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("staged %s/%s (%d files) into %s", container, prefix, len(refs), target)
    return found


def local_folder(storage: Storage, prefix: str, pinned: str | None) -> str:
    """A local folder (or file) used in place, after checking it is the version pinned when
    the job was submitted (InputError otherwise)."""
    if pinned is not None:
        _check_pin(prefix, folder_version(storage, LOCAL, prefix)[0], pinned)
    return prefix


def _check_pin(prefix: str, version: str, pinned: str | None) -> None:
    if pinned is not None and version != pinned:
        raise InputError(f"{prefix} changed after the job was submitted: a job runs the code, "
                         "model and inputs it was submitted with — submit it again")


def local_items(storage: Storage, prefix: str, items: list[BlobRef]) -> list[str]:
    """The paths of a mini-batch's local files, read in place: each must lie inside the
    job's input folder (links resolved) and still be the version listed when the job was
    partitioned; InputError otherwise."""
    folder = os.path.realpath(prefix) if os.path.isdir(prefix) else None
    for ref in items:
        real = os.path.realpath(ref.name)
        inside = (folder is None and ref.name == prefix) or (
            folder is not None and real.startswith(folder.rstrip("/") + "/"))
        if not inside or not storage.local.allowed(real, resolved=True):
            raise InputError(f"inputs: {ref.name} leads to {real}, outside the folder {prefix} "
                             "the job names: a job reads only that folder")
    changed = changed_local_items(items)
    if changed:
        raise InputError(changed)
    return [ref.name for ref in items]


def changed_local_items(items: list[BlobRef]) -> str:
    """Why some local files are not the version listed ("" when all are)."""
    for ref in items:
        try:
            version = file_version(os.stat(ref.name))
        except FileNotFoundError:
            return (f"inputs: {ref.name} was removed after the job listed it; submit the job "
                    "again once the inputs stop changing")
        if version != ref.etag:
            return (f"inputs: {ref.name} changed after the job listed it (version was "
                    f"{ref.etag}, now {version}); submit the job again once the inputs stop "
                    "changing")
    return ""


def download_items(
    storage: Storage, container: str, prefix: str, items: list[BlobRef], dest: str
) -> list[str]:
    """Download items concurrently into ``dest``; returns their local paths in item order."""
    paths = [os.path.join(dest, local_name(prefix, ref.name)) for ref in items]

    files = storage.files(container)

    def fetch(pair: tuple[BlobRef, str]) -> None:
        files.download_to_file(container, pair[0].name, pair[1])

    if len(items) == 1:
        fetch((items[0], paths[0]))
    elif items:
        list(_downloads().map(fetch, zip(items, paths, strict=True)))
    return paths
