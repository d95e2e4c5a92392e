"""Sparse Parquet copies kept across mini-batches: each byte range fetched once, a hard
link per mini-batch, and the oldest copies dropped past the budget without pulling a file
from under a mini-batch reading it."""

from __future__ import annotations

import os
from pathlib import Path

from batchfx.tabular.copies import SparseCopies

DATA = bytes(range(256)) * 40  # a "blob" of 10,240 bytes


class Fetches:
    """Writes the blob's bytes into the copy, recording which ranges it was asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    def __call__(self, path: str, gaps: list[tuple[int, int]]) -> None:
        self.asked += gaps
        with open(path, "r+b") as stream:
            for start, stop in gaps:
                stream.seek(start)
                stream.write(DATA[start:stop])


def test_each_range_is_fetched_once_for_all_mini_batches(tmp_path: Path) -> None:
    copies, fetch = SparseCopies(str(tmp_path / "copies")), Fetches()
    key = ("data", "big.parquet", "0x1")
    copies.link(key, len(DATA), [(9000, 10240), (0, 4000)], fetch, str(tmp_path / "mb0"))
    copies.link(key, len(DATA), [(9000, 10240), (2000, 6000)], fetch, str(tmp_path / "mb1"))
    assert fetch.asked == [(0, 4000), (9000, 10240), (4000, 6000)]
    assert (tmp_path / "mb1").read_bytes()[2000:6000] == DATA[2000:6000]
    assert os.stat(tmp_path / "mb0").st_ino == os.stat(tmp_path / "mb1").st_ino


def test_another_version_is_another_copy(tmp_path: Path) -> None:
    copies, fetch = SparseCopies(str(tmp_path / "copies")), Fetches()
    copies.link(("data", "f", "0x1"), len(DATA), [(0, 100)], fetch, str(tmp_path / "a"))
    copies.link(("data", "f", "0x2"), len(DATA), [(0, 100)], fetch, str(tmp_path / "b"))
    assert fetch.asked == [(0, 100), (0, 100)]
    assert os.stat(tmp_path / "a").st_ino != os.stat(tmp_path / "b").st_ino


def test_old_copies_go_past_the_budget_but_a_linked_one_stays_readable(tmp_path: Path
                                                                       ) -> None:
    copies, fetch = SparseCopies(str(tmp_path / "copies"), kept_bytes=5000), Fetches()
    copies.link(("data", "old", "0x1"), len(DATA), [(0, 4000)], fetch, str(tmp_path / "a"))
    copies.link(("data", "new", "0x1"), len(DATA), [(0, 4000)], fetch, str(tmp_path / "b"))
    copies.link(("data", "newer", "0x1"), len(DATA), [(0, 4000)], fetch, str(tmp_path / "c"))
    assert len(os.listdir(tmp_path / "copies")) < 3  # the oldest dropped
    assert (tmp_path / "a").read_bytes()[:4000] == DATA[:4000]  # its link still reads
    copies.link(("data", "old", "0x1"), len(DATA), [(0, 10)], fetch, str(tmp_path / "d"))
    assert fetch.asked[-1] == (0, 10)  # fetched again: the copy had gone


def test_each_worker_process_has_its_own_folder_and_dead_ones_are_removed(
        tmp_path: Path) -> None:
    import socket
    import subprocess

    from batchfx.tabular.copies import copies_folder

    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    stale = tmp_path / "parquet-copies" / f"{host}-{gone.pid}"
    stale.mkdir(parents=True)
    alive = tmp_path / "parquet-copies" / f"{host}-{os.getppid()}"
    alive.mkdir()
    mine = copies_folder(str(tmp_path), os.getpid())
    assert mine == str(tmp_path / "parquet-copies" / f"{host}-{os.getpid()}")
    assert not stale.exists() and alive.exists()
