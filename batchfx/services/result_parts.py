"""Where a mini-batch's result rows are kept until finalize puts the job's output together.

A part of at most ``INLINE_PART_MAX`` bytes (the common case: a line or two per item, or a
few thousand Parquet rows) is stored in the mini-batch row itself (``part_data``, over up
to eight binary properties), written by the same conditional replace that records the
outcome, so it costs no storage operation of its own, cannot be
left behind by a worker that lost its claim, and finalize reads it with the rows. A larger
part is a blob under ``jobs/<id>/results/`` named in the row (``part``).

Finalize reads the rows without ``part_data`` (a job's rows can hold a few hundred MB of
it) and streams the inline parts in mini-batch order with ``PartReader``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from batchfx.core.records import (
    PART_CHUNK,
    PART_PROPERTIES,
    MiniBatchRecord,
    join_part,
    mini_batch_key,
)
from batchfx.storage import Storage

__all__ = ["INLINE_PART_MAX", "KEEP_PASSED_MAX", "PART_EXTENSIONS", "PartReader", "has_part",
           "store_part"]

# Table properties hold at most 64 KiB of binary and a row 1 MiB (the row also keeps up to
# ~64 KiB of error text: 32,000 characters stored as UTF-16): eight properties of 64 KiB.
INLINE_PART_MAX = len(PART_PROPERTIES) * PART_CHUNK
# Inline parts a reader keeps after passing them, for a later request (finalize's memory).
KEEP_PASSED_MAX = 64 * 1024 * 1024

PART_EXTENSIONS = {"text": "txt", "csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}


def has_part(record: MiniBatchRecord) -> bool:
    """Whether the mini-batch left rows for the output (inline or in a blob; a row read
    without ``part_data`` still counts its rows)."""
    return bool(record.part or record.part_data or record.rows)


def store_part(storage: Storage, record: MiniBatchRecord, data: bytes, output_format: str,
               *, inline: bool = True) -> None:
    """Keep ``data`` for ``record``: in the row when small and ``inline``, else as a blob
    named in it (per_input_file parts are blobs: their segments blob is named after them).
    """
    record.part, record.part_data = "", b""
    if not data:
        return
    if inline and len(data) <= INLINE_PART_MAX:
        record.part_data = data
        return
    isolated = f"-i{record.isolations}" if record.isolations else ""
    record.part = (f"jobs/{record.job_id}/results/{mini_batch_key(record.index)}"
                   f"-t{record.tries}{isolated}.{PART_EXTENSIONS[output_format]}")
    storage.blobs.upload(storage.settings.jobs_container, record.part, data)


class PartReader:
    """Reads the parts of one job's mini-batches: blobs by name, inline parts from a stream
    over the job's rows (``RowKey, part_data`` only) that moves forward as records are
    asked for in mini-batch order. Parts the stream passes on the way are kept (up to
    ``keep_max`` bytes) for when they are asked for: partitioned output asks group by
    group. A record asked for after its row was passed and not kept is read by its key."""

    def __init__(self, storage: Storage, job_id: str, *,
                 keep_max: int = KEEP_PASSED_MAX) -> None:
        self._storage, self._job_id = storage, job_id
        self._stream: Iterator[dict[str, Any]] | None = None
        self._next: dict[str, Any] | None = None  # the row the stream gave, not yet used
        self._position = -1  # the index of the last row taken from the stream
        self._passed: dict[int, bytes] = {}  # parts passed on the way, by index
        self._passed_bytes, self._keep_max = 0, keep_max
        self.point_reads = 0

    def read(self, record: MiniBatchRecord) -> bytes:
        """The part's bytes (empty when the mini-batch left none)."""
        if record.part:
            return self._storage.blobs.download(self._storage.settings.jobs_container,
                                                record.part)
        if not record.rows:
            return b""
        if record.part_data:  # a record read with its part
            return record.part_data
        kept = self._passed.pop(record.index, None)
        if kept is not None:
            self._passed_bytes -= len(kept)
            return kept
        if record.index < self._position:
            return self._point_read(record)
        while True:
            row = self._take()
            if row is None:
                return self._point_read(record)
            index = int(row["RowKey"])
            if index == record.index:
                self._next = None
                return join_part(row)
            if index > record.index:  # keep it for the record asked for next
                return self._point_read(record)
            self._next = None
            self._keep(index, join_part(row))

    def _keep(self, index: int, data: bytes) -> None:
        """Keep a passed part while the budget allows (rows without one cost nothing)."""
        if data and self._passed_bytes + len(data) <= self._keep_max:
            self._passed[index] = data
            self._passed_bytes += len(data)

    def _take(self) -> dict[str, Any] | None:
        """The next row of the stream, kept until used or passed."""
        if self._next is None:
            if self._stream is None:
                self._stream = self._storage.tables.query(
                    self._storage.settings.minibatches_table, self._job_id,
                    select=["RowKey", *PART_PROPERTIES])
            self._next = next(self._stream, None)
            if self._next is not None:
                self._position = int(self._next["RowKey"])
        return self._next

    def _point_read(self, record: MiniBatchRecord) -> bytes:
        self.point_reads += 1
        found = self._storage.tables.get(self._storage.settings.minibatches_table,
                                         self._job_id, mini_batch_key(record.index))
        return join_part(found.values) if found else b""
