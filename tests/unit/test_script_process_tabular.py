"""ScriptProcess with tabular mini-batches against a real child process: what the parent
learns about the rows even when run() never returns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_script_process import config, context

from batchfx.scoring import ScriptProcess, TryPhase
from batchfx.tabular.batch import ReadSlice, TabularBatch

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def worker() -> Iterator[ScriptProcess]:
    with ScriptProcess(init_timeout=30, shutdown_timeout=2) as w:
        yield w


def test_a_tabular_run_that_hangs_still_counts_the_rows_it_read(
    worker: ScriptProcess, tmp_path: Path
) -> None:
    """The plan estimated 10 rows (text cut by bytes); the child read 25 before run()."""
    data = tmp_path / "rows.csv"
    data.write_text("id\n" + "".join(f"{i}\n" for i in range(25)))
    batch = TabularBatch("csv", (ReadSlice(str(data)),), rows=10)
    outcome = worker.run_mini_batch(config(tmp_path, "tabular_hangs.py"), batch, context(),
                                    timeout=3)
    assert outcome.error is not None and outcome.error.phase is TryPhase.TIMEOUT
    assert (outcome.items, outcome.failed) == (25, 25)
