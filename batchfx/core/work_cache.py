"""The work folder's shared caches, kept under a size budget (least recently used first).

Models and side inputs fetched from storage (``snapshots/<version>``), the model layouts
built from them (``models/<key>``) and script environments (``envs/<key>``) are shared by
every job of the same content, so they outlive the job that fetched them. Each use by a
job leaves a marker (``cache-users/<kind>/<entry>/<job id>``, written *before* the entry
is looked at, so a sweep never removes what a starting mini-batch is about to read); a
sweep drops the markers of ended jobs and, while the caches hold more than
``BATCHFX_WORK_DIR_MAX_MB``, removes the entries no running job uses, the least recently
used first.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CACHE_KINDS", "CacheEntry", "evict", "note_use", "read_entries"]

logger = logging.getLogger(__name__)

CACHE_KINDS = ("snapshots", "models", "envs")
_USERS = "cache-users"


def note_use(work_dir: str, kind: str, entry: str, job_id: str) -> None:
    """Record that ``job_id`` uses the cache entry (and when: the marker's mtime)."""
    folder = os.path.join(work_dir, _USERS, kind, entry)
    os.makedirs(folder, exist_ok=True)
    Path(folder, job_id).touch()


@dataclass(frozen=True)
class CacheEntry:
    """One cached folder: its size on disk, the jobs using it, when it was last used."""

    kind: str
    name: str
    path: str
    size: int
    users: tuple[str, ...]
    last_used: float


def _size(path: str, seen: set[tuple[int, int]]) -> int:
    """Bytes on disk under ``path``, a hard-linked file counted once (layouts link into
    the snapshots)."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def read_entries(work_dir: str, ended: Callable[[str], bool]) -> list[CacheEntry]:
    """Every cache entry, after dropping the markers of jobs ``ended`` says have ended (a
    job whose state cannot be read keeps its marker)."""
    entries: list[CacheEntry] = []
    seen: set[tuple[int, int]] = set()
    for kind in CACHE_KINDS:
        root = os.path.join(work_dir, kind)
        try:
            names = sorted(e.name for e in os.scandir(root)
                           if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
        except FileNotFoundError:
            continue
        for name in names:
            path = os.path.join(root, name)
            marks = os.path.join(work_dir, _USERS, kind, name)
            users, last = [], os.stat(path).st_mtime
            for mark in os.scandir(marks) if os.path.isdir(marks) else []:
                last = max(last, mark.stat().st_mtime)
                try:
                    done = ended(mark.name)
                except Exception:  # storage unreachable: still in use, as far as we know
                    done = False
                if done:
                    os.remove(mark.path)
                else:
                    users.append(mark.name)
            entries.append(CacheEntry(kind, name, path, _size(path, seen), tuple(users), last))
    return entries


def evict(work_dir: str, budget_bytes: int, ended: Callable[[str], bool]) -> list[str]:
    """Remove unused entries, least recently used first, until the caches fit
    ``budget_bytes`` (0: no budget); returns the removed entries as ``kind/name``."""
    entries = read_entries(work_dir, ended)
    total = sum(e.size for e in entries)
    removed: list[str] = []
    if budget_bytes <= 0 or total <= budget_bytes:
        return removed
    for entry in sorted((e for e in entries if not e.users), key=lambda e: e.last_used):
        if total <= budget_bytes:
            break
        _remove(entry.path)
        shutil.rmtree(os.path.join(work_dir, _USERS, entry.kind, entry.name),
                      ignore_errors=True)
        total -= entry.size
        removed.append(f"{entry.kind}/{entry.name}")
    if removed:
        logger.info("work folder caches over %d MB: removed %d unused entries (%s)",
                    budget_bytes // 2**20, len(removed), ", ".join(removed[:5]))
    if total > budget_bytes:
        logger.warning("work folder caches hold %d MB, over the %d MB budget, all of it in "
                       "use by running jobs", total // 2**20, budget_bytes // 2**20)
    return removed


def _remove(path: str) -> None:
    # Snapshots are read-only (files and, for some, folders): make them removable.
    for folder, dirs, _ in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o700)
    os.chmod(path, 0o700)
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):  # something was still open or locked: tried again next sweep
        logger.warning("could not remove %s entirely", path)
