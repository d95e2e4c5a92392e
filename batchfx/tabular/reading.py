"""The scoring child's side: read a tabular mini-batch's slices into one pandas DataFrame.

Each slice is read with pyarrow (CSV, JSON lines, Parquet), narrowed to its row range and
partition key values, and the slices are joined in order. Column types are inferred per
mini-batch, except partition key columns of CSV, which stay text so that values such as
``007`` keep their form. Runs in the child, so a huge or odd frame never crosses a pipe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchfx.tabular.batch import ReadSlice, TabularBatch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read_batch"]

_BATCH_ROWS = 64 * 1024


def read_batch(batch: TabularBatch) -> pd.DataFrame:
    """The mini-batch's rows as one DataFrame (default index 0..n-1), in input order."""
    import pandas as pd

    tables = [_read_slice(batch.format, s) for s in batch.slices]
    frame: pd.DataFrame
    if len(tables) == 1:
        frame = tables[0].to_pandas()
        return frame
    import pyarrow as pa

    try:
        frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Slices typed differently (text in one, numbers in another): let pandas join them.
        frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    return frame


def _read_slice(fmt: str, piece: ReadSlice) -> Any:
    if fmt == "parquet":
        table = _read_parquet(piece)
    elif fmt == "csv":
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        keys = {k: pa.string() for k, _ in piece.where}
        table = pa_csv.read_csv(piece.path,
                                convert_options=pa_csv.ConvertOptions(column_types=keys))
    elif fmt == "jsonl":
        import pyarrow.json as pa_json

        table = pa_json.read_json(piece.path)
    else:
        raise ValueError(f"format: {fmt!r} is not one of csv, jsonl, parquet")
    return _where(table, piece.where) if piece.where else table


def _read_parquet(piece: ReadSlice) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(piece.path)
    groups = list(piece.row_groups)
    if piece.take is None and not piece.skip:
        return parquet.read_row_groups(groups)
    # Decode batch by batch and stop after the range: memory stays near one batch.
    end = piece.skip + (piece.take if piece.take is not None else parquet.metadata.num_rows)
    kept, seen = [], 0
    for record_batch in parquet.iter_batches(batch_size=_BATCH_ROWS, row_groups=groups):
        low, high = max(piece.skip - seen, 0), min(end - seen, record_batch.num_rows)
        if high > low:
            kept.append(record_batch.slice(low, high - low))
        seen += record_batch.num_rows
        if seen >= end:
            break
    return pa.Table.from_batches(kept, schema=parquet.schema_arrow)


def _where(table: Any, where: tuple[tuple[str, str | None], ...]) -> Any:
    """Rows whose key columns, as text, equal ``where``'s values (None: null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = None
    for key, value in where:
        column = pc.cast(table.column(key), pa.string())
        match = pc.is_null(column) if value is None else pc.fill_null(
            pc.equal(column, value), False)
        mask = match if mask is None else pc.and_(mask, match)
    return table.filter(mask)
