"""Writing a job's rows at finalize, from the parts of every mini-batch with rows (a
failed mini-batch has one too when isolating its bad items let the others score).

One append_row file (parts concatenated in mini-batch order, one part per mini-batch);
with ``partition_output`` one such file per ``k=v`` folder; with ``output_action:
per_input_file`` one file per input file, cut from the parts by their segments (see
``output_layout``). CSV (and text with a header) parts must share their header.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from batchfx.core.errors import OutputError
from batchfx.core.output_layout import (
    OutputFile,
    Piece,
    decode_segments,
    encode_segments,
    hive_folder,
    plan_per_input_file,
    segments_blob_name,
)
from batchfx.core.packing import ManifestLine, parse_manifest_line
from batchfx.core.records import JobRecord, MiniBatchRecord
from batchfx.core.row_format import ParquetSink, common_header, read_parquet_part
from batchfx.core.script_contract import Segment
from batchfx.core.spec import JobSpec
from batchfx.services.result_parts import PartReader, has_part
from batchfx.storage import Storage
from batchfx.storage.blobs import BlockWriter

__all__ = ["store_segments", "write_job_outputs"]

logger = logging.getLogger(__name__)

_UPLOAD_THREADS = 8  # per-input-file outputs are many small blobs


def store_segments(storage: Storage, part: str, segments: tuple[Segment, ...]) -> str:
    """Upload a part's segments next to it; returns the blob name (for the mini-batch row)."""
    name = segments_blob_name(part)
    storage.blobs.upload(storage.settings.jobs_container, name, encode_segments(segments))
    return name


def write_job_outputs(storage: Storage, job: JobRecord, spec: JobSpec,
                      records: list[MiniBatchRecord]) -> tuple[list[str], int]:
    """Write the job's row outputs; returns their names (relative to the job's output) and
    the rows written. OutputError when the parts cannot be put together."""
    parts = [r for r in records if has_part(r)]
    reader = PartReader(storage, job.job_id)
    if spec.output_action == "per_input_file":
        return _write_per_input_file(storage, job, spec, parts, reader)
    if spec.partition_output:
        return _write_partitioned(storage, job, spec, parts, reader)
    name = spec.append_row_file_name
    return [name], _write_concatenated(storage, job, spec, name, parts, reader)


def _header(spec: JobSpec, headers: Iterable[tuple[int, str]], name: str) -> bytes:
    """The header line the file starts with (checked to be every part's), or nothing."""
    if spec.output_format == "csv" or (spec.output_format == "text" and spec.append_row_header):
        return common_header(headers, spec.output_format, f"output {name!r}").encode()
    return b""


def _write_concatenated(storage: Storage, job: JobRecord, spec: JobSpec, name: str,
                        parts: list[MiniBatchRecord], reader: PartReader) -> int:
    """One file of every part in mini-batch order."""
    full = f"{job.output_prefix}/{name}"
    if spec.output_format == "parquet":
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "out.parquet")
            sink = ParquetSink(path, f"parquet output {name!r}")
            try:
                for r in parts:
                    sink.add(r.index, read_parquet_part(reader.read(r)))
            finally:
                sink.close()
            if sink.rows:
                storage.blobs.upload_file(job.output_container, full, path)
            else:
                storage.blobs.upload(job.output_container, full, b"")
        return sink.rows
    header = _header(spec, ((r.index, r.header) for r in parts), name)
    writer = storage.blobs.block_writer(job.output_container, full)
    writer.write(header)
    rows = 0
    for r in parts:
        writer.write(reader.read(r))
        rows += r.rows
    writer.close()
    return rows


def _lines(storage: Storage, records: list[MiniBatchRecord]
           ) -> Iterator[tuple[MiniBatchRecord, ManifestLine]]:
    """Each record with its manifest line; a manifest page is downloaded once."""
    page_name, page = "", b""
    for record in records:
        if not record.manifest:
            raise OutputError(f"mini-batch {record.index} has rows but no manifest reference")
        if record.manifest != page_name:
            page_name = record.manifest
            page = storage.blobs.download(storage.settings.jobs_container, page_name)
        start = record.manifest_offset
        yield record, parse_manifest_line(page[start:start + record.manifest_length])


def _write_partitioned(storage: Storage, job: JobRecord, spec: JobSpec,
                       parts: list[MiniBatchRecord], reader: PartReader
                       ) -> tuple[list[str], int]:
    """One append_row file per partition key values, under ``k1=v1/k2=v2/`` folders."""
    groups: dict[str, list[MiniBatchRecord]] = {}
    for record, line in _lines(storage, parts):
        folder = hive_folder(spec.partition_keys or [], line.partition_key_value)
        groups.setdefault(folder, []).append(record)
    names, rows = [], 0
    for folder, members in groups.items():
        name = f"{folder}/{spec.append_row_file_name}"
        rows += _write_concatenated(storage, job, spec, name, members, reader)
        names.append(name)
    return names, rows


def _plan(storage: Storage, spec: JobSpec, parts: list[MiniBatchRecord]) -> list[OutputFile]:
    entries: list[tuple[int, str, tuple[Segment, ...], list[str]]] = []
    prefix = ""
    for record, line in _lines(storage, parts):
        if not record.segments:
            raise OutputError(
                f"per_input_file: mini-batch {record.index} has rows but no record of the "
                "input files they came from (no segments blob); score the job again")
        data = storage.blobs.download(storage.settings.jobs_container, record.segments)
        if line.tabular is not None:
            names = [s.file.name for s in line.tabular.slices]
        else:
            names = [ref.name for ref in line.items]
        entries.append((record.index, record.header, decode_segments(data), names))
        prefix = line.prefix
    return plan_per_input_file(entries, prefix, spec.output_format)


def _write_per_input_file(storage: Storage, job: JobRecord, spec: JobSpec,
                          parts: list[MiniBatchRecord], reader: PartReader
                          ) -> tuple[list[str], int]:
    """One output file per input file, its rows in input order."""
    files = _plan(storage, spec, parts)
    headers = {f.name: _header(spec, f.headers, f.name) for f in files}  # all checked first
    by_index: dict[int, list[tuple[OutputFile, Piece]]] = {}
    for file in files:
        for piece in file.pieces:
            by_index.setdefault(piece.index, []).append((file, piece))
    for pieces in by_index.values():
        pieces.sort(key=lambda pair: pair[1].offset)
    open_files: dict[str, _Assembly] = {}
    futures: list[Future[None]] = []
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(_UPLOAD_THREADS) as pool:
        for record in parts:
            if record.index not in by_index:
                continue
            data = reader.read(record)
            table = read_parquet_part(data) if spec.output_format == "parquet" else None
            for file, piece in by_index[record.index]:
                assembly = open_files.get(file.name)
                if assembly is None:
                    assembly = open_files[file.name] = _Assembly(
                        storage, job, spec, file, headers[file.name], tmp)
                if table is not None:
                    assembly.add(piece, table.slice(piece.offset, piece.length))
                else:
                    assembly.add(piece, data[piece.offset:piece.offset + piece.length])
                if assembly.done:
                    futures.append(pool.submit(assembly.finish))
                    del open_files[file.name]
        for future in futures:
            future.result()
    logger.info("job %s: wrote %d per-input-file outputs", job.job_id, len(files))
    return [f.name for f in files], sum(f.rows for f in files)


class _Assembly:
    """One per-input-file output being put together from its pieces: in memory when it has
    one piece, else streamed (blocks staged as they fill, Parquet into a local file)."""

    def __init__(self, storage: Storage, job: JobRecord, spec: JobSpec, file: OutputFile,
                 header: bytes, tmp: str) -> None:
        self._storage, self._file = storage, file
        self._container, self._name = job.output_container, f"{job.output_prefix}/{file.name}"
        self._added = 0
        single = len(file.pieces) == 1
        self._target: Any = None
        self._sink: ParquetSink | None = None
        self._writer: BlockWriter | None = None
        self._chunks: list[bytes] = [header]
        if spec.output_format == "parquet":
            self._target = io.BytesIO() if single else os.path.join(tmp, f"{id(self)}.parquet")
            self._sink = ParquetSink(self._target, f"parquet output {file.name!r}")
        elif not single:
            self._writer = storage.blobs.block_writer(self._container, self._name)
            self._writer.write(header)

    @property
    def done(self) -> bool:
        """Whether every piece was added."""
        return self._added == len(self._file.pieces)

    def add(self, piece: Piece, rows: Any) -> None:
        """Add the next piece's rows: bytes, or a pyarrow table for Parquet."""
        if self._sink is not None:
            self._sink.add(piece.index, rows)
        elif self._writer is not None:
            self._writer.write(rows)
        else:
            self._chunks.append(rows)
        self._added += 1

    def finish(self) -> None:
        """Close and upload the file (runs on the upload pool)."""
        blobs = self._storage.blobs
        if self._writer is not None:
            self._writer.close()
        elif self._sink is None:
            blobs.upload(self._container, self._name, b"".join(self._chunks))
        else:
            self._sink.close()
            if isinstance(self._target, io.BytesIO):
                blobs.upload(self._container, self._name, self._target.getvalue())
            else:
                blobs.upload_file(self._container, self._name, self._target)
                os.remove(self._target)
