"""Packing pieces into mini-batches (with and without partition keys), slices, manifest lines."""

from __future__ import annotations

import pytest

from batchfx.core.errors import InputError
from batchfx.core.packing import (
    Packer,
    folder_values,
    key_group,
    layout_manifest_page,
    parse_manifest_line,
)
from batchfx.core.sizes import MiniBatchSize
from batchfx.tabular.lines import LineScanner, line_start_after, sample_lines
from batchfx.tabular.planning import PlannedBatch, TabularInputs, line_body
from batchfx.tabular.slices import InputFile, Slice, merge_slices, slice_from_wire, slice_to_wire

CSV = InputFile("in/a.csv", 1000, "e1", header=10)
PARQUET = InputFile("in/b.parquet", 5000, "e2", footer=4000)


# --- Packer --------------------------------------------------------------------------------

def test_packer_fills_up_to_the_limit_in_order() -> None:
    packer: Packer[str] = Packer(10)
    closed = []
    for name, weight in [("a", 4), ("b", 6), ("c", 3), ("d", 20), ("e", 1)]:
        closed += packer.add(name, weight)
    closed += packer.flush()
    assert [batch for _, batch in closed] == [["a", "b"], ["c"], ["d"], ["e"]]


def test_packer_never_mixes_groups_and_flushes_in_order_of_first_appearance() -> None:
    packer: Packer[int] = Packer(3)
    closed = []
    for item, group in enumerate(["x", "y", "x", "x", "y", "z", "x"]):
        closed += packer.add(item, 1, group)
    closed += packer.flush()
    assert closed == [("x", [0, 2, 3]), ("x", [6]), ("y", [1, 4]), ("z", [5])]


def test_packer_drop_forgets_the_open_mini_batch() -> None:
    packer: Packer[int] = Packer(2)
    assert packer.add(1, 2) == []
    assert packer.add(2, 1) == [(None, [1])]
    assert packer.drop() == [2]
    assert packer.flush() == []


def test_packer_refuses_a_limit_of_zero() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        Packer(0)


# --- key=value folders ---------------------------------------------------------------------

def test_folder_values_read_hive_folders_and_unquote_them() -> None:
    assert folder_values("day=2024-01-01/shop=a%2Fb/part=/x=1.csv") == {
        "day": "2024-01-01", "shop": "a/b", "part": ""}


def test_key_group_names_the_missing_folder_and_how_to_lay_files_out() -> None:
    assert key_group("in/day=1/shop=a/f.txt", "in", ["shop", "day"]) == ("a", "1")
    with pytest.raises(InputError, match=r"'in/day=1/f.txt' has no shop=<value> folder") as info:
        key_group("in/day=1/f.txt", "in", ["shop"])
    assert "e.g. in/shop=<value>/f.txt" in str(info.value)


# --- slices --------------------------------------------------------------------------------

def test_adjacent_byte_ranges_of_one_file_merge() -> None:
    first = Slice(CSV, 0, 100, rows=5)
    assert merge_slices(first, Slice(CSV, 100, 300, rows=7)) == Slice(CSV, 0, 300, rows=12)
    merged = merge_slices(first, Slice(CSV, 100, 300, estimate=9))
    assert merged is not None and (merged.rows, merged.estimate) == (None, 14)
    assert merge_slices(first, Slice(CSV, 150, 300)) is None
    assert merge_slices(first, Slice(CSV, 100, 300, where=(("k", "a"),))) is None


def test_consecutive_whole_row_groups_merge_but_row_ranges_do_not() -> None:
    a = Slice(PARQUET, 4, 900, (0, 1), rows=10)
    b = Slice(PARQUET, 900, 2000, (1, 2), rows=10)
    assert merge_slices(a, b) == Slice(PARQUET, 4, 2000, (0, 2), rows=20)
    assert merge_slices(a, Slice(PARQUET, 900, 2000, (1, 2), 0, 5, rows=5)) is None
    assert merge_slices(a, Slice(PARQUET, 2000, 3000, (2, 3), rows=10)) is None


@pytest.mark.parametrize("piece", [
    Slice(CSV, 10, 500, estimate=12),
    Slice(CSV, 10, 500, rows=3, where=(("k", "a"), ("j", None))),
    Slice(PARQUET, 4, 900, (0, 2), rows=10),
    Slice(PARQUET, 4, 900, (1, 2), 100, 50, rows=50),
])
def test_slices_survive_their_wire_form(piece: Slice) -> None:
    files = [CSV, PARQUET]
    wire = slice_to_wire(piece, files.index(piece.file))
    assert slice_from_wire(wire, [InputFile.from_wire(f.to_wire()) for f in files]) == piece


def test_slices_describe_themselves_for_reports() -> None:
    assert Slice(CSV, 10, 500).describe() == "in/a.csv#bytes=10-500"
    assert Slice(PARQUET, 4, 9, (1, 2), 100, 50).describe() == (
        "in/b.parquet#row_group=1&rows=100-150")
    assert Slice(PARQUET, 4, 9, (0, 3), where=(("k", "a"),)).describe() == (
        "in/b.parquet#row_groups=0-3&k=a")


# --- manifest lines ------------------------------------------------------------------------

def _inputs(keys: tuple[str, ...] = ()) -> TabularInputs:
    return TabularInputs(None, "data", "in", "csv", MiniBatchSize(bytes=100),  # type: ignore[arg-type]
                         keys)


def test_a_tabular_manifest_line_round_trips_with_merged_slices_and_rows() -> None:
    batch = PlannedBatch(("a",), [Slice(CSV, 0, 100, estimate=4), Slice(CSV, 100, 250, rows=6),
                                  Slice(PARQUET, 4, 9, (0, 1), rows=2)])
    body, rows = line_body(_inputs(("shop",)), batch)
    assert rows == 12 and body["rows"] is None and body["estimate"] == 12
    page = layout_manifest_page([(body, rows)], first_index=41)
    line = parse_manifest_line(page.body)
    assert line.index == 41 and line.item_count == 12
    assert line.partition_key_value == {"shop": "a"}
    assert line.tabular is not None and line.tabular.format == "csv"
    assert line.tabular.slices == [Slice(CSV, 0, 250, estimate=10),
                                   Slice(PARQUET, 4, 9, (0, 1), rows=2)]
    assert [i.name for i in line.items] == ["in/a.csv#bytes=0-250", "in/b.parquet#row_groups=0-1"]


def test_a_line_of_known_rows_says_so() -> None:
    body, rows = line_body(_inputs(), PlannedBatch(None, [Slice(CSV, 0, 100, rows=4)]))
    assert (body["rows"], rows) == (4, 4)
    assert "partition_key_value" not in body


# --- lines ---------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100])
def test_line_scanner_finds_non_empty_lines_across_any_chunking(chunk: int) -> None:
    data = b'a,b\n1,"x"\n\n\r\n2,"y\n3,z\n4'
    scanner = LineScanner(0, quotes=True)
    found: list[tuple[int, int]] = []
    for i in range(0, len(data), chunk):
        starts, ends = scanner.feed(data[i : i + chunk])
        found += list(zip(starts.tolist(), ends.tolist(), strict=True))
    assert found == [(0, 4), (4, 10), (13, 18), (18, 22)]
    assert scanner.finish() == (22, 23)
    assert scanner.odd_quote_at == 13  # the line `2,"y`


def test_line_start_after_and_samples() -> None:
    assert line_start_after(b"abc\ndef", 100) == 104
    assert line_start_after(b"abc", 100) is None
    sample = sample_lines(b"1,a\n\n2,b\n3,", 50, quotes=True)
    assert (sample.rows, sample.bytes, sample.odd_quote_at) == (2, 9, None)
