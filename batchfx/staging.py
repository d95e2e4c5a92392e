"""Bringing a job's code, model and inputs from Blob storage onto the worker's disk."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from batchfx.storage import BlobRef, Storage

__all__ = ["download_items", "local_name", "stage_folder"]

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


def stage_folder(storage: Storage, container: str, prefix: str, cache_root: str) -> str:
    """Download a folder once per content version; later calls reuse the local copy.

    The cache key is the listing's names and ETags, so a changed folder is fetched again,
    and the copy is moved into place atomically so two workers never see half of it.
    """
    refs = list(storage.blobs.list_names(container, f"{prefix}/" if prefix else ""))
    signature = hashlib.sha256()
    signature.update(f"{container}/{prefix}".encode())
    for ref in sorted(refs, key=lambda r: r.name):
        signature.update(f"\n{ref.name}\t{ref.etag}".encode())
    target = os.path.join(cache_root, signature.hexdigest()[:32])
    if os.path.isdir(target):
        return target
    os.makedirs(cache_root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=cache_root)
    try:
        download_items(storage, container, prefix, refs, staging)
        with _lock:
            try:
                os.rename(staging, target)
            except OSError:  # another worker placed the same version first
                shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("staged %s/%s (%d files) into %s", container, prefix, len(refs), target)
    return target


def download_items(
    storage: Storage, container: str, prefix: str, items: list[BlobRef], dest: str
) -> list[str]:
    """Download items concurrently into ``dest``; returns their local paths in item order."""
    paths = [os.path.join(dest, local_name(prefix, ref.name)) for ref in items]

    def fetch(pair: tuple[BlobRef, str]) -> None:
        storage.blobs.download_to_file(container, pair[0].name, pair[1])

    if len(items) == 1:
        fetch((items[0], paths[0]))
    elif items:
        list(_downloads().map(fetch, zip(items, paths, strict=True)))
    return paths
