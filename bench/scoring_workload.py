"""The CSV-scoring workload of issue 11, and the process-pool baselines it is measured against.

    python bench/scoring_workload.py prepare DIR [--files 5000]
    python bench/scoring_workload.py pool DIR --mini-batch-size 10 --out FILE
    python bench/scoring_workload.py pool-blobs DIR --connection-string CS --container C ...
    python bench/scoring_workload.py pool-parquet DIR --mini-batch-rows 100000 --out FILE

The workload: N CSV files of 50 rows x 20 float features; a scikit-learn RandomForest
(50 trees, depth 12) loaded from ``AZUREML_MODEL_DIR`` in ``init()``; ``run(mini_batch)``
reads each file with pandas, makes one ``predict`` per mini-batch and returns one line per
row. The baselines are ``multiprocessing.Pool(2)`` with ``init()`` once per process, as a
user would write the loop batchfx replaces; each writes its rows in input order to
``--out`` and the epoch time of its first mini-batch result to ``--out``.first.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROWS_PER_FILE = 50
FEATURES = 20
WORKERS = 2

SCORE_PY = '''\
"""Azure ML file-scoring script: one prediction per CSV row (bench workload)."""
import os

import joblib
import pandas as pd

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.joblib"))


def run(mini_batch):
    frames = [pd.read_csv(path) for path in mini_batch]
    predictions = model.predict(pd.concat(frames).to_numpy())
    lines, at = [], 0
    for path, frame in zip(mini_batch, frames):
        name = os.path.basename(path)
        for row in range(len(frame)):
            lines.append(f"{name} {row} {predictions[at]}")
            at += 1
    return lines
'''

TABULAR_SCORE_PY = '''\
"""Azure ML tabular scoring script: one prediction per row (bench workload)."""
import os

import joblib
import pandas as pd

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.joblib"))


def run(mini_batch):
    features = mini_batch[[f"f{i}" for i in range(20)]].to_numpy()
    return pd.DataFrame({"id": mini_batch["id"].to_numpy(), "label": model.predict(features)})
'''


def prepare(root: Path, files: int, parquet_rows: int = 0) -> None:
    """Write model/, code/score.py, inputs/ (``files`` CSVs) and, with ``parquet_rows``,
    parquet/data.parquet (row groups of 131,072 rows) and tabular_code/score.py."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(11)
    train = rng.normal(size=(4000, FEATURES))
    labels = (train[:, :5].sum(axis=1) > 0).astype(int) + (train[:, 5] > 1).astype(int)
    model = RandomForestClassifier(n_estimators=50, max_depth=12, random_state=0)
    model.fit(train, labels)
    (root / "model").mkdir(parents=True, exist_ok=True)
    joblib.dump(model, root / "model" / "model.joblib")
    for folder, text in (("code", SCORE_PY), ("tabular_code", TABULAR_SCORE_PY)):
        (root / folder).mkdir(exist_ok=True)
        (root / folder / "score.py").write_text(text)
    inputs = root / "inputs"
    inputs.mkdir(exist_ok=True)
    columns = [f"f{i}" for i in range(FEATURES)]
    for i in range(files):
        frame = pd.DataFrame(rng.normal(size=(ROWS_PER_FILE, FEATURES)).round(6), columns=columns)
        frame.to_csv(inputs / f"item-{i:05d}.csv", index=False)
    if parquet_rows:
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = {"id": np.arange(parquet_rows, dtype=np.int64)}
        data.update({c: rng.normal(size=parquet_rows) for c in columns})
        (root / "parquet").mkdir(exist_ok=True)
        pq.write_table(pa.table(data), root / "parquet" / "data.parquet", row_group_size=131072)


def mini_batches(items: Sequence[str], size: int) -> list[list[str]]:
    """Items in order, ``size`` at a time."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


# --- the pool baselines -----------------------------------------------------------------------

_score: ModuleType | None = None
_blobs: Any = None


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_score", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _init(root: str, script: str, connection: str | None) -> None:
    global _score, _blobs
    os.environ["AZUREML_MODEL_DIR"] = root  # holds model/, as in Azure ML
    _score = _load(Path(root) / script)
    _score.init()
    if connection:
        from azure.storage.blob import BlobServiceClient

        _blobs = BlobServiceClient.from_connection_string(connection)


def _run_files(batch: list[str]) -> list[str]:
    assert _score is not None
    return [str(row) for row in _score.run(batch)]


def _run_blobs(job: tuple[str, list[str], str]) -> list[str]:
    """Download the mini-batch's blobs (threads, as batchfx does), then run()."""
    from concurrent.futures import ThreadPoolExecutor

    container, names, folder = job
    paths = [os.path.join(folder, name.rsplit("/", 1)[-1]) for name in names]

    def fetch(pair: tuple[str, str]) -> None:
        with open(pair[1], "wb") as stream:
            _blobs.get_blob_client(container, pair[0]).download_blob().readinto(stream)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fetch, zip(names, paths, strict=True)))
    try:
        return _run_files(paths)
    finally:
        for path in paths:
            os.remove(path)


def _run_rows(job: tuple[str, int, int, int]) -> Any:
    import pyarrow.parquet as pq

    assert _score is not None
    path, group, start, stop = job
    table = pq.ParquetFile(path).read_row_group(group)
    return _score.run(table.slice(start, stop - start).to_pandas())


def _write(out: Path, results: Any, first: float) -> None:
    with open(out, "w") as stream:
        for rows in results:
            stream.writelines(f"{row}\n" for row in rows)
    Path(f"{out}.first").write_text(f"{first}\n")


def _imap(pool: Any, fn: Any, jobs: list[Any]) -> tuple[list[Any], float]:
    results, first = [], 0.0
    for result in pool.imap(fn, jobs, chunksize=1):  # one mini-batch per hand-out
        first = first or time.time()
        results.append(result)
    return results, first


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["prepare", "pool", "pool-blobs", "pool-parquet"])
    parser.add_argument("root", type=Path)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--parquet-rows", type=int, default=0)
    parser.add_argument("--mini-batch-size", type=int, default=10)
    parser.add_argument("--mini-batch-rows", type=int, default=100_000)
    parser.add_argument("--connection-string")
    parser.add_argument("--container", default="benchdata")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.what == "prepare":
        prepare(root, args.files, args.parquet_rows)
        return 0
    assert args.out is not None
    if args.what == "pool-parquet":
        import pandas as pd
        import pyarrow.parquet as pq

        path = str(root / "parquet" / "data.parquet")
        meta = pq.ParquetFile(path).metadata
        jobs = [(path, g, s, min(s + args.mini_batch_rows, meta.row_group(g).num_rows))
                for g in range(meta.num_row_groups)
                for s in range(0, meta.row_group(g).num_rows, args.mini_batch_rows)]
        with multiprocessing.Pool(WORKERS, _init, (str(root), "tabular_code/score.py", None)) \
                as pool:
            frames, first = _imap(pool, _run_rows, jobs)
        pd.concat(frames, ignore_index=True).to_parquet(args.out)
        Path(f"{args.out}.first").write_text(f"{first}\n")
        return 0
    names = sorted(p.name for p in (root / "inputs").iterdir())
    connection = args.connection_string if args.what == "pool-blobs" else None
    with multiprocessing.Pool(WORKERS, _init, (str(root), "code/score.py", connection)) as pool:
        if connection:
            import tempfile

            folder = tempfile.mkdtemp(prefix="pool-blobs-")
            jobs: list[Any] = [(args.container, [f"inputs/{n}" for n in batch], folder)
                               for batch in mini_batches(names, args.mini_batch_size)]
            results, first = _imap(pool, _run_blobs, jobs)
        else:
            paths = [str(root / "inputs" / n) for n in names]
            results, first = _imap(pool, _run_files, mini_batches(paths, args.mini_batch_size))
    _write(args.out, results, first)
    return 0


if __name__ == "__main__":
    sys.exit(main())
