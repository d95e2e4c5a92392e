"""Measuring one command's whole process tree: wall time, CPU-seconds, peak RSS, load.

CPU-seconds come from ``getrusage(RUSAGE_CHILDREN)`` once every descendant is reaped. The
bench makes itself a *child subreaper* (Linux ``prctl``), so a grandchild whose parent
exits first (a scoring process, node under npx) is handed to the bench and reaped here
instead of by init: its CPU is counted too. Peak RSS is the largest sum of the resident
sets of every process of the tree, sampled every ``interval_s``. Linux only.
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Measured", "become_subreaper", "load_average", "measure", "tree_cpu_seconds"]

_PR_SET_CHILD_SUBREAPER = 36
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process (and reaped by ``measure``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def load_average() -> float:
    """The 1-minute load average of the machine."""
    return os.getloadavg()[0]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _descendants(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += tree.get(pid, [])
    return found


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_cpu_seconds(pid: int) -> float:
    """CPU-seconds so far of a live process and its live descendants (for a process the
    bench did not start, such as a shared Azurite)."""
    total = 0
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


class _PeakSampler:
    """Samples the tree's summed RSS until stopped; keeps the largest."""

    def __init__(self, root: int, interval_s: float) -> None:
        self.root, self.interval_s, self.peak = root, interval_s, 0
        self.extra: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            pids = set(_descendants(self.root))
            for pid in self.extra:
                pids.update(_descendants(pid))
            self.peak = max(self.peak, sum(_rss_bytes(p) for p in pids))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass(frozen=True)
class Measured:
    """One command's run."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    load: float
    started_at: float  # time.time() at launch
    output: str
    left_running: tuple[int, ...] = ()


def _reap_orphans(keep: Sequence[int], timeout_s: float = 60.0) -> list[int]:
    """Wait for the descendants handed to this subreaper (all but ``keep``); returns those
    still running after ``timeout_s`` (left behind: a defect of the command)."""
    deadline = time.monotonic() + timeout_s
    while True:
        orphans = [p for p in _children().get(os.getpid(), []) if p not in keep]
        for pid in orphans:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    orphans.remove(pid)
            except ChildProcessError:
                orphans.remove(pid)
        if not orphans or time.monotonic() > deadline:
            return orphans
        time.sleep(0.05)


def measure(command: Sequence[str], *, cwd: Path | None = None,
            env: Mapping[str, str] | None = None, shared: Sequence[int] = (),
            keep: Sequence[int] = (), interval_s: float = 0.1,
            timeout_s: float = 1800) -> Measured:
    """Run ``command`` to its end and measure its whole tree; ``shared`` are live processes
    (an Azurite started before) whose CPU and memory during the run count too; ``keep``
    are this process's own long-lived children (never waited for)."""
    load = load_average()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    shared_before = sum(tree_cpu_seconds(p) for p in shared)
    started_at, started = time.time(), time.perf_counter()
    proc = subprocess.Popen(list(command), cwd=cwd, env=dict(env) if env else None,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = _PeakSampler(proc.pid, interval_s)
    sampler.extra = list(shared)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    wall = time.perf_counter() - started
    peak = sampler.stop()
    left = _reap_orphans([*shared, *keep])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu += sum(tree_cpu_seconds(p) for p in shared) - shared_before
    return Measured(proc.returncode, wall, cpu, peak / 2**20, load, started_at, output,
                    tuple(left))
