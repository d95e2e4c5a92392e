"""Pieces of a CSV or JSON-lines file, cut at line boundaries.

By bytes: nominal cuts every ``limit`` bytes, each moved to the next line start by a
small ranged read (read concurrently); rows are estimated from those reads. By rows:
the file is streamed once in chunks (bounded memory) and cut after every ``limit``
non-empty lines. With partition keys on columns: streamed in blocks whose key columns
are parsed, giving runs of each key value's rows.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from typing import Any

import numpy as np

from batchfx.core.errors import InputError
from batchfx.core.file_refs import display_name
from batchfx.tabular.cuts import FileCut, Piece
from batchfx.tabular.grouping import chunk_rows, group_rows, text_columns
from batchfx.tabular.lines import LineScanner, Sample, line_start_after, sample_lines
from batchfx.tabular.remote import reads, stream_chunks
from batchfx.tabular.slices import InputFile, Slice

__all__ = ["grouped_pieces", "pieces_by_bytes", "pieces_by_rows"]

HEAD = 64 * 1024  # first read of a file: the CSV header, a sample, all of a small file
PROBE = 16 * 1024  # read after a nominal cut to find the next line start
WINDOW = 16  # probes in flight
STREAM_BELOW = 64 * 1024  # byte limits finer than this stream the file instead of probing
BLOCK = 8 * 1024 * 1024  # bytes parsed at once when grouping by key columns


def _read(cut: FileCut, offset: int, length: int) -> bytes:
    return cut.read(offset, length) if length > 0 else b""


def _head(cut: FileCut) -> tuple[int, bytes]:
    """(header length, the first bytes including the whole header); no header for JSONL."""
    size = cut.ref.size
    head = _read(cut, 0, min(size, HEAD))
    if not cut.csv:
        return 0, head
    while (end := line_start_after(head, 0)) is None and len(head) < size:
        head += _read(cut, len(head), min(size - len(head), max(HEAD, len(head))))
    return (end if end is not None else size), head


class _Rate:
    """Bytes per row seen so far in a file, to estimate the rows of a byte range."""

    def __init__(self) -> None:
        self.rows, self.bytes = 0, 0

    def add(self, sample: Sample) -> None:
        self.rows += sample.rows
        self.bytes += sample.bytes

    def estimate(self, size: int) -> int:
        if size <= 0:
            return 0
        return max(1, round(size * self.rows / self.bytes)) if self.rows else 1


def pieces_by_bytes(cut: FileCut, cursor: Mapping[str, int]) -> Iterator[Piece]:
    """Byte ranges of about ``limit`` bytes cut at line starts.

    A file read whole by the first read, or cut finer than ``STREAM_BELOW``, is cut from
    its streamed lines (rows counted exactly); otherwise each cut costs one small probe
    read and rows are estimated from the probes' lines.
    """
    assert cut.limit.bytes is not None
    size = cut.ref.size
    header, head = _head(cut)
    if header >= size:
        return  # a header and no rows
    file = InputFile(cut.ref.name, size, cut.ref.etag, header=header if cut.csv else 0)
    if size - header <= cut.limit.bytes:
        yield _whole(cut, file, header, head)
        return
    if len(head) >= size or cut.limit.bytes < STREAM_BELOW:
        start = int(cursor.get("o", 0))
        scan_from = max(start, header)
        chunks = iter([head[scan_from:]]) if len(head) >= size else stream_chunks(
            cut.read, scan_from, size)
        yield from _cut_streamed(cut, file, header, chunks, start)
        return
    yield from _cut_by_probes(cut, file, header, head, int(cursor.get("k", 0)))


def _whole(cut: FileCut, file: InputFile, header: int, head: bytes) -> Piece:
    """A file that fits one mini-batch: never cut, so quoted line breaks do no harm."""
    if len(head) >= file.size:  # read whole: rows counted, unless lines are not rows
        scanner = LineScanner(header, quotes=cut.csv)
        starts, _ = scanner.feed(head[header:])
        rows = int(starts.size) + (scanner.finish() is not None)
        if scanner.odd_quote_at is None:
            return Piece(Slice(file, 0, file.size, rows=rows), file.size, cut.group(), {})
    sample = sample_lines(head[header:], header, quotes=cut.csv)
    rate = _Rate()
    rate.add(sample)
    piece = Slice(file, 0, file.size, estimate=rate.estimate(file.size - header))
    return Piece(piece, file.size, cut.group(), {})


def _cut_streamed(cut: FileCut, file: InputFile, header: int, chunks: Iterator[bytes],
                  start: int) -> Iterator[Piece]:
    """The cuts probes would make (first line start at or after each nominal cut), found
    in streamed lines; ``chunks`` start at ``max(start, header)``."""
    assert cut.limit.bytes is not None
    limit, size = cut.limit.bytes, file.size

    def nominal_after(offset: int) -> int:  # the first nominal cut past ``offset``
        return header + limit if offset < header else header + ((offset - header) // limit
                                                                 + 1) * limit

    scanner = LineScanner(max(start, header), quotes=cut.csv)
    nominal, count = nominal_after(start), 0
    for chunk in chunks:
        _, ends = scanner.feed(chunk)
        cut.odd_quotes(scanner.odd_quote_at)
        done = 0
        while done < ends.size:
            found = done + int(np.searchsorted(ends[done:], nominal))
            if found >= ends.size:
                break
            stop = int(ends[found])
            rows = count + found - done + 1
            yield Piece(Slice(file, start, stop, rows=rows), stop - start, cut.group(),
                        {"o": start})
            start, count, done, nominal = stop, 0, found + 1, nominal_after(stop)
        count += int(ends.size) - done
    count += scanner.finish() is not None
    cut.odd_quotes(scanner.odd_quote_at)
    if start < size and count:
        yield Piece(Slice(file, start, size, rows=count), size - start, cut.group(),
                    {"o": start})


def _cut_by_probes(cut: FileCut, file: InputFile, header: int, head: bytes,
                   first_k: int) -> Iterator[Piece]:
    """Cuts found by one probe read each (concurrently); rows estimated from the probes."""
    size = file.size
    rate = _Rate()
    sample = sample_lines(head[header:], header, quotes=cut.csv)
    cut.odd_quotes(sample.odd_quote_at)
    rate.add(sample)
    cuts = _cuts(cut, header, max(first_k, 1))
    start, k = 0, first_k
    if first_k:
        k, start, sample = next(cuts, (first_k, size, Sample(0, 0, None)))
        rate.add(sample)
    ends: Iterator[tuple[int, int, Sample | None]] = itertools.chain(cuts, [(-1, size, None)])
    for next_k, stop, seen in ends:
        if stop > start:
            rows_bytes = stop - start - (header if start == 0 else 0)
            piece = Slice(file, start, stop, estimate=rate.estimate(rows_bytes))
            yield Piece(piece, stop - start, cut.group(), {"k": k})
            start, k = stop, next_k
        if seen is not None:
            rate.add(seen)


def _cuts(cut: FileCut, header: int, first: int) -> Iterator[tuple[int, int, Sample]]:
    """(k, line start at or after nominal cut k, sample) for k = first, first + 1, ..."""
    assert cut.limit.bytes is not None
    positions = ((k, header + k * cut.limit.bytes) for k in itertools.count(first))
    wanted = itertools.takewhile(lambda kp: kp[1] < cut.ref.size, positions)
    pending: list[tuple[int, Future[tuple[int, Sample]]]] = []
    try:
        for k, nominal in wanted:
            pending.append((k, reads().submit(_probe, cut, nominal)))
            if len(pending) >= WINDOW:
                k0, future = pending.pop(0)
                yield k0, *future.result()
        while pending:
            k0, future = pending.pop(0)
            yield k0, *future.result()
    finally:
        for _, future in pending:
            future.cancel()


def _probe(cut: FileCut, nominal: int) -> tuple[int, Sample]:
    """The first line start at or after ``nominal``, and a sample of the lines after it."""
    size, offset, window = cut.ref.size, nominal - 1, PROBE
    while offset < size:
        data = _read(cut, offset, min(window, size - offset))
        start = line_start_after(data, offset)
        if start is not None:
            sample = sample_lines(data[start - offset:], start, quotes=cut.csv)
            cut.odd_quotes(sample.odd_quote_at)
            return start, sample
        offset, window = offset + len(data), window * 2  # a line longer than the probe
    return size, Sample(0, 0, None)


def pieces_by_rows(cut: FileCut, cursor: Mapping[str, int]) -> Iterator[Piece]:
    """Ranges of exactly ``limit`` rows (the last one fewer), found by one streamed pass."""
    assert cut.limit.rows is not None
    limit, size = cut.limit.rows, cut.ref.size
    header, head = _head(cut)
    file = InputFile(cut.ref.name, size, cut.ref.etag, header=header if cut.csv else 0)
    start = int(cursor.get("o", 0))
    scan_from = max(start, header)
    scanner = LineScanner(scan_from, quotes=cut.csv)
    if len(head) >= size:
        chunks: Iterator[bytes] = iter([head[scan_from:]])
    else:
        chunks = stream_chunks(cut.read, scan_from, size)
    count = 0
    for chunk in chunks:
        _, ends = scanner.feed(chunk)
        cut.odd_quotes(scanner.odd_quote_at)
        due = np.arange(limit - count - 1, ends.size, limit)
        for index in due:
            stop = int(ends[index])
            yield Piece(Slice(file, start, stop, rows=limit), limit, cut.group(), {"o": start})
            start = stop
        count += int(ends.size) - int(due.size) * limit
    count += scanner.finish() is not None
    cut.odd_quotes(scanner.odd_quote_at)
    if count:
        yield Piece(Slice(file, start, size, rows=count), count, cut.group(), {"o": start})


def grouped_pieces(cut: FileCut) -> Iterator[Piece]:
    """Runs of each key value's rows, block by block (the file is streamed once)."""
    size = cut.ref.size
    header, head = _head(cut)
    file = InputFile(cut.ref.name, size, cut.ref.etag, header=header if cut.csv else 0)
    block = max(BLOCK, cut.limit.bytes or 0)
    pending, at = b"", header
    for chunk in stream_chunks(cut.read, header, size, chunk=block):
        pending += chunk
        end = pending.rfind(b"\n") + 1
        if end:
            yield from _block_pieces(cut, file, head[:header], pending[:end], at, final=False)
            pending, at = pending[end:], at + end
    if pending:
        yield from _block_pieces(cut, file, head[:header], pending, at, final=True)


def _block_pieces(cut: FileCut, file: InputFile, header: bytes, block: bytes, at: int, *,
                  final: bool) -> Iterator[Piece]:
    scanner = LineScanner(at, quotes=cut.csv)
    starts, ends = scanner.feed(block)
    tail = scanner.finish() if final else None
    cut.odd_quotes(scanner.odd_quote_at)
    if tail is not None:
        starts, ends = np.append(starts, tail[0]), np.append(ends, tail[1])
    if not starts.size:
        return
    table = _key_table(cut, header, block)
    if table.num_rows != starts.size:
        raise InputError(
            f"inputs: {display_name(cut.container, file.name)}: {table.num_rows} rows parsed but "
            f"{starts.size} non-empty lines between bytes {at} and {at + len(block)} — each "
            "row must be one line (no line breaks in fields, no lines of only spaces)")
    keys = cut.column_keys
    weights = None if cut.limit.rows is not None else (ends - starts).astype(np.int64)
    for values, rows in group_rows(text_columns(table, keys)):
        where = tuple(zip(keys, values, strict=True))
        for part, weight in chunk_rows(rows, weights, cut.limit.limit):
            piece = Slice(file, int(starts[part[0]]), int(ends[part[-1]]), rows=int(part.size),
                          where=where)
            yield Piece(piece, weight, cut.group(where))


def _key_table(cut: FileCut, header: bytes, block: bytes) -> Any:
    """The block's key columns as a pyarrow table (CSV key columns read as text)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json

    keys = list(cut.column_keys)
    try:
        if cut.csv:
            names = pa_csv.read_csv(io.BytesIO(header)).column_names if header else []
            for key in keys:
                if key not in names:
                    raise cut.missing_column(key, names)
            options = pa_csv.ConvertOptions(include_columns=keys,
                                            column_types={k: pa.string() for k in keys})
            return pa_csv.read_csv(io.BytesIO(header + block), convert_options=options)
        table = pa_json.read_json(io.BytesIO(block))
    except pa.ArrowException as exc:
        raise InputError(f"inputs: {display_name(cut.container, cut.ref.name)} cannot be read as "
                         f"{cut.format} ({exc})") from exc
    for key in keys:
        if key not in table.column_names:
            raise cut.missing_column(key, table.column_names)
    return table.select(keys)
