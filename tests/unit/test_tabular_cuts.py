"""Cutting CSV and JSON-lines files into pieces: at line starts, by bytes or rows, resumable.

The file is read through a plain function over bytes (the same seam the partitioner binds
to ranged blob reads)."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable

import pytest

from batchfx.core.errors import InputError
from batchfx.core.sizes import MiniBatchSize
from batchfx.storage.blobs import BlobRef
from batchfx.tabular import pieces_text
from batchfx.tabular.pieces import FileCut, Piece, file_pieces


class Reads:
    """A ranged-read function over bytes that remembers what was read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, offset: int, length: int) -> bytes:
        self.ranges.append((offset, length))
        return self.data[offset : offset + length]

    @property
    def bytes_read(self) -> int:
        return sum(length for _, length in self.ranges)


def cut_of(data: bytes, fmt: str, limit: MiniBatchSize, keys: tuple[str, ...] = (),
           read: Callable[[int, int], bytes] | None = None) -> FileCut:
    return FileCut(read or Reads(data), "c", BlobRef("in/data", len(data), "etag"), fmt, limit,
                   keys)


def csv_bytes(rows: int, seed: int = 1, width: int = 200) -> bytes:
    rnd = random.Random(seed)
    lines = [f"{i},{'x' * rnd.randint(1, width)},{rnd.choice('abc')}" for i in range(rows)]
    return ("id,text,k\n" + "\n".join(lines) + "\n").encode()


def spans(pieces: list[Piece]) -> list[tuple[int, int]]:
    return [(p.slice.start, p.slice.stop) for p in pieces]


def assert_tiles_at_line_starts(data: bytes, pieces: list[Piece]) -> None:
    cuts = spans(pieces)
    assert cuts[0][0] == 0 and cuts[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cuts))
    assert all(data[start - 1 : start] == b"\n" for start, _ in cuts[1:])


@pytest.mark.parametrize("limit", [1000, 5_000, 50_000, 100_000, 250_000])
def test_byte_cuts_fall_at_line_starts_and_tile_the_file(limit: int) -> None:
    data = csv_bytes(5_000)
    pieces = list(file_pieces(cut_of(data, "csv", MiniBatchSize(bytes=limit)), {}))
    assert_tiles_at_line_starts(data, pieces)
    assert len(pieces) == pytest.approx(len(data) / limit, rel=0.1, abs=1)


def test_probed_cuts_equal_streamed_cuts_and_estimate_rows_closely() -> None:
    data = csv_bytes(3_000, width=3000)
    limit = MiniBatchSize(bytes=100_000)
    cut = cut_of(data, "csv", limit)
    header, head = pieces_text._head(cut)
    file = pieces_text.InputFile("in/data", len(data), "etag", header=header)
    probed = list(pieces_text._cut_by_probes(cut, file, header, head, 0))
    streamed = list(pieces_text._cut_streamed(cut, file, header, iter([data[header:]]), 0))
    assert spans(probed) == spans(streamed)
    assert all(p.slice.rows is None for p in probed)
    assert sum(p.slice.rows or 0 for p in streamed) == 3_000
    assert sum(p.slice.estimate for p in probed) == pytest.approx(3_000, rel=0.15)


def test_probing_reads_a_small_part_of_a_large_file() -> None:
    data = csv_bytes(40_000)
    reads = Reads(data)
    pieces = list(file_pieces(cut_of(data, "csv", MiniBatchSize(bytes=1024**2), read=reads), {}))
    assert len(pieces) >= 4
    assert reads.bytes_read < len(data) / 10


def test_a_cut_inside_a_line_longer_than_the_probe_moves_to_its_end() -> None:
    lines = [b"id,text"] + [b"%d,%s" % (i, b"y" * (60_000 if i == 3 else 50)) for i in range(8)]
    data = b"\n".join(lines) + b"\n"
    pieces = list(file_pieces(cut_of(data, "csv", MiniBatchSize(bytes=70_000)), {}))
    assert_tiles_at_line_starts(data, pieces)


def test_the_first_piece_holds_the_csv_header_and_later_ones_record_its_length() -> None:
    data = csv_bytes(2_000)
    pieces = list(file_pieces(cut_of(data, "csv", MiniBatchSize(bytes=70_000)), {}))
    assert pieces[0].slice.start == 0
    assert {p.slice.file.header for p in pieces} == {len(b"id,text,k\n")}


def test_a_file_that_fits_is_one_piece_with_exact_rows() -> None:
    data = b"id,v\n1,a\n2,b\n\n3,c"
    [piece] = file_pieces(cut_of(data, "csv", MiniBatchSize(bytes=1024)), {})
    assert (piece.slice.start, piece.slice.stop, piece.slice.rows) == (0, len(data), 3)


def test_a_header_without_rows_gives_no_piece() -> None:
    assert list(file_pieces(cut_of(b"id,v\n", "csv", MiniBatchSize(bytes=1024)), {})) == []


@pytest.mark.parametrize("limit", [MiniBatchSize(bytes=60_000), MiniBatchSize(bytes=200_000),
                                   MiniBatchSize(rows=777)])
def test_resuming_at_a_pieces_cursor_gives_the_same_remaining_pieces(
        limit: MiniBatchSize) -> None:
    data = csv_bytes(8_000)
    pieces = list(file_pieces(cut_of(data, "csv", limit), {}))
    for index in (1, len(pieces) // 2, len(pieces) - 1):
        again = list(file_pieces(cut_of(data, "csv", limit), pieces[index].cursor))
        assert spans(again) == spans(pieces[index:])


def test_a_row_limit_cuts_after_exactly_that_many_non_empty_lines() -> None:
    data = csv_bytes(2_500).replace(b"\n1000,", b"\n\n\r\n1000,")  # empty lines are not rows
    pieces = list(file_pieces(cut_of(data, "csv", MiniBatchSize(rows=1000)), {}))
    assert [p.slice.rows for p in pieces] == [1000, 1000, 500]
    assert_tiles_at_line_starts(data, pieces)
    assert data[pieces[1].slice.start:].startswith(b"\n\r\n1000,")


def test_a_row_limit_streams_the_file_once_in_chunks() -> None:
    data = csv_bytes(50_000)
    reads = Reads(data)
    list(file_pieces(cut_of(data, "csv", MiniBatchSize(rows=100), read=reads), {}))
    assert reads.bytes_read <= len(data) + pieces_text.HEAD


def test_json_lines_have_no_header_and_a_last_line_without_newline_counts() -> None:
    data = "\n".join(json.dumps({"id": i}) for i in range(10)).encode()
    pieces = list(file_pieces(cut_of(data, "jsonl", MiniBatchSize(rows=4)), {}))
    assert [p.slice.rows for p in pieces] == [4, 4, 2]
    assert pieces[0].slice.file.header == 0


def test_a_quoted_line_break_is_refused_when_the_file_must_be_cut() -> None:
    data = csv_bytes(3_000).replace(b"\n1500,", b'\n1500,"two\nlines",')
    with pytest.raises(InputError, match=r"line break inside|line breaks inside") as info:
        list(file_pieces(cut_of(data, "csv", MiniBatchSize(bytes=50_000)), {}))
    assert "in/data" in str(info.value) and "Parquet or JSON lines" in str(info.value)


def test_a_quoted_line_break_in_a_file_read_whole_is_fine() -> None:
    data = b'id,text\n1,"two\nlines"\n2,x\n'
    [piece] = file_pieces(cut_of(data, "csv", MiniBatchSize(bytes=1024)), {})
    assert piece.slice.rows is None and (piece.slice.start, piece.slice.stop) == (0, len(data))


def test_partition_key_pieces_hold_one_key_value_each_and_every_row_once() -> None:
    data = csv_bytes(6_000)
    pieces = list(file_pieces(cut_of(data, "csv", MiniBatchSize(rows=500), keys=("k",)), {}))
    assert {p.group for p in pieces} == {("a",), ("b",), ("c",)}
    assert all(p.slice.where == (("k", p.group[0]),) for p in pieces if p.group)
    assert sum(p.slice.rows or 0 for p in pieces) == 6_000
    assert all((p.slice.rows or 0) <= 500 for p in pieces)
    lines = data.split(b"\n")[1:-1]
    for value in "abc":
        expected = sum(line.endswith(f",{value}".encode()) for line in lines)
        assert sum(p.slice.rows or 0 for p in pieces if p.group == (value,)) == expected


def test_partition_keys_name_a_missing_column() -> None:
    data = csv_bytes(10)
    with pytest.raises(InputError, match=r"partition_keys: 'shop' is neither .* \(id, text, k\)"):
        list(file_pieces(cut_of(data, "csv", MiniBatchSize(rows=5), keys=("shop",)), {}))


def test_json_lines_partition_keys_compare_values_as_text() -> None:
    data = "".join(json.dumps({"id": i, "k": [1, "1", None][i % 3]}) + "\n"
                   for i in range(30)).encode()
    with pytest.raises(InputError, match="cannot be read as jsonl"):
        # a column that is a number in some rows and text in others is refused by pyarrow
        list(file_pieces(cut_of(data, "jsonl", MiniBatchSize(rows=5), keys=("k",)), {}))
    clean = "".join(json.dumps({"id": i, "k": [1, 2, None][i % 3]}) + "\n"
                    for i in range(30)).encode()
    pieces = list(file_pieces(cut_of(clean, "jsonl", MiniBatchSize(rows=5), keys=("k",)), {}))
    assert {p.group for p in pieces} == {("1",), ("2",), (None,)}


def test_a_probed_cut_that_lands_inside_a_quoted_field_is_caught() -> None:
    limit = 100_000
    rows = [f"{i},{'x' * 50}" for i in range(3000)]
    body = "id,text\n"
    while len(body) < 8 + limit - 30:
        body += rows[len(body) // 60] + "\n"
    body += '77777,"' + "y" * 40 + '\nrest of the field"\n'  # the break lies past the cut
    data = (body + "\n".join(rows[:1500]) + "\n").encode()
    assert data.index(b"\nrest") >= 8 + limit - 1
    with pytest.raises(InputError, match="unbalanced quote"):
        list(file_pieces(cut_of(data, "csv", MiniBatchSize(bytes=limit)), {}))
