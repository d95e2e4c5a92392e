"""ScriptPool against real script processes: shared by concurrent invocations, at most
process_count_per_node per config, each process with its own output folder and log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_script_process import config, context

from batchfx.core.script_contract import MiniBatchContext, ScriptConfig
from batchfx.scoring.pool import PoolDraining, PoolRun, ScriptPool, slot_config

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def pool() -> Iterator[ScriptPool]:
    with ScriptPool(init_timeout=30, shutdown_timeout=2, max_processes=2) as p:
        yield p


def slow(tmp_path: Path, seconds: float, **changes: object) -> ScriptConfig:
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    env = (("SLOW_MARKER_DIR", str(markers)), ("SLOW_SECONDS", str(seconds)))
    return config(tmp_path, "slow.py", environment_variables=env, **changes)


def run_all(pool: ScriptPool, cfg: ScriptConfig, processes: int, batches: list[list[str]]
            ) -> list[PoolRun]:
    """Run every batch at once, one thread each (as the host runs invocations)."""
    done: list[PoolRun] = []
    lock = threading.Lock()

    def one(index: int, batch: list[str]) -> None:
        result = pool.run_mini_batch(cfg, processes, batch, context(index), 30)
        with lock:
            done.append(result)

    threads = [threading.Thread(target=one, args=(i, b)) for i, b in enumerate(batches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done


def test_two_processes_run_two_mini_batches_at_once(pool: ScriptPool, tmp_path: Path) -> None:
    folder = tmp_path / "rendezvous"
    folder.mkdir()
    cfg = config(tmp_path, "rendezvous.py", environment_variables=(
        ("RENDEZVOUS_DIR", str(folder)), ("RENDEZVOUS_COUNT", "2")))
    runs = run_all(pool, cfg, 2, [["a"], ["b"]])
    assert all(r.outcome.ok for r in runs)
    assert sorted(r.outcome.part for r in runs) == [b"a together\n", b"b together\n"]
    assert {r.slot for r in runs} == {0, 1}
    assert len({r.outcome.worker for r in runs}) == 2  # two script processes
    assert len(pool.child_pids) == 2


def test_a_config_never_gets_more_processes_than_it_asks_for(pool: ScriptPool,
                                                             tmp_path: Path) -> None:
    runs = run_all(pool, slow(tmp_path, 0.3), 1, [["a"], ["b"], ["c"]])
    assert all(r.outcome.ok for r in runs)
    assert {r.slot for r in runs} == {0}
    assert len({r.outcome.worker for r in runs}) == 1  # init() once, the process reused
    assert len(pool.child_pids) == 1


def test_each_process_has_its_own_output_folder_and_log(pool: ScriptPool,
                                                        tmp_path: Path) -> None:
    cfg = slow(tmp_path, 0.5)
    runs = run_all(pool, cfg, 2, [["a"], ["b"]])
    folders = {r.config.output_dir for r in runs}
    logs = {r.config.log_path for r in runs}
    assert folders == {str(tmp_path / "output" / "p0"), str(tmp_path / "output" / "p1")}
    assert logs == {str(tmp_path / "worker-p0.log"), str(tmp_path / "worker-p1.log")}
    assert slot_config(cfg, 1).key != slot_config(cfg, 0).key


def test_admission_holds_at_most_two_mini_batches_per_process(pool: ScriptPool) -> None:
    inside = 0
    most = 0
    lock = threading.Lock()

    def one() -> None:
        nonlocal inside, most
        with pool.admit("job-1", 2):
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.2)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 4  # 2 processes x (1 running + 1 staged)


def test_another_config_takes_over_a_process_when_the_pool_is_full(pool: ScriptPool,
                                                                   tmp_path: Path) -> None:
    first = run_all(pool, slow(tmp_path, 0.1), 2, [["a"], ["b"]])
    other = config(tmp_path, "echo.py", output_dir=str(tmp_path / "other"))
    (tmp_path / "x.txt").write_text("x")
    second = pool.run_mini_batch(other, 1, [str(tmp_path / "x.txt")], MiniBatchContext(
        "job-2", "mb-0", 0, 1), 30)
    assert second.outcome.ok and second.outcome.rows == 1
    assert second.outcome.worker not in {r.outcome.worker for r in first}
    assert len(pool.child_pids) == 2  # max_processes: one of the first config's went


def test_a_closed_pool_refuses_runs(tmp_path: Path) -> None:
    pool = ScriptPool(init_timeout=30, shutdown_timeout=2)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.run_mini_batch(config(tmp_path, "echo.py"), 1, [], context(), 5)


def test_draining_lets_a_running_mini_batch_finish_and_starts_no_other(
        pool: ScriptPool, tmp_path: Path) -> None:
    cfg = slow(tmp_path, 1.0)
    first: list[PoolRun] = []
    running = threading.Thread(target=lambda: first.append(
        pool.run_mini_batch(cfg, 1, ["a"], context(0), 30)))
    with pool.admit("job-1", 1):
        running.start()
        while not list((tmp_path / "markers").glob("*")):  # run() has begun
            time.sleep(0.02)
        refused: list[BaseException] = []

        def wait_for_a_place() -> None:  # a third mini-batch of a one-process job
            try:
                with pool.admit("job-1", 1), pool.admit("job-1", 1):
                    pass
            except PoolDraining as exc:
                refused.append(exc)

        waiting = threading.Thread(target=wait_for_a_place)
        waiting.start()
        time.sleep(0.2)
        assert waiting.is_alive()  # no place for it yet
        pool.drain()
        waiting.join(10)
        assert not waiting.is_alive() and len(refused) == 1  # woken and refused at once
        assert pool.draining
        with pytest.raises(PoolDraining):  # staged, waiting for the busy process: refused
            pool.run_mini_batch(cfg, 1, ["b"], context(1), 30)
        running.join(30)
    assert first and first[0].outcome.ok  # the run() under way was not cut short
    with pytest.raises(PoolDraining), pool.admit("job-2", 1):
        pass
