"""Scoring MLflow models without a scoring script, as Azure ML's no-code deployment does.

A job whose ``model`` is an MLflow model folder (it has an ``MLmodel`` file) and that names
no ``entry_script`` is scored by ``SCORE_SCRIPT``, an Azure-ML-style scoring script run
like any other: ``init()`` loads the model through ``mlflow.pyfunc`` from
``AZUREML_MODEL_DIR``; ``run(mini_batch)`` takes file paths (CSV, Parquet, JSON Lines:
one ``predict`` per file) or a tabular ``pandas.DataFrame``, casts the columns to the
model signature and returns one row per input row: ``row``, ``prediction``, ``file_name``.

For a tabular mini-batch read by batchfx, ``file_name`` and ``row`` come from the row
sources the scoring host publishes for the frame (``batchfx.tabular.reading.row_sources``):
the input file's base name and the row's number in it (null where unknown: CSV/JSON-lines
slices cut after the file's first line). A caller may instead give two columns, which the
scorer reads and drops before ``predict``: ``FILE_NAME_COLUMN`` (the input file of each
row) and ``ROW_COLUMN`` (its row number in that file). With neither, ``file_name`` is
empty and ``row`` counts from 0 within the mini-batch.

mlflow is imported only by ``init()``; ``detect`` needs nothing but the file system.
"""

from __future__ import annotations

from pathlib import Path

from batchfx.scoring.mlflow.detect import MLMODEL, find_mlmodel, find_mlmodel_in, is_mlflow_model

__all__ = [
    "FILE_NAME_COLUMN",
    "MLMODEL",
    "OUTPUT_COLUMNS",
    "ROW_COLUMN",
    "SCORE_SCRIPT",
    "find_mlmodel",
    "find_mlmodel_in",
    "is_mlflow_model",
]

SCORE_SCRIPT = Path(__file__).with_name("score.py")
FILE_NAME_COLUMN = "__file_name__"
ROW_COLUMN = "__row__"
OUTPUT_COLUMNS = ("row", "prediction", "file_name")
