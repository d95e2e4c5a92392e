"""Output layout: Hive partition folders, per-input-file names and plans, segments."""

from __future__ import annotations

import pytest

from batchfx.core.errors import OutputError
from batchfx.core.output_layout import (
    OutputFile,
    Piece,
    combine_segments,
    decode_segments,
    encode_segments,
    hive_folder,
    per_file_name,
    plan_per_input_file,
    segments_blob_name,
)
from batchfx.core.script_contract import TryOutcome


def outcome(*segments: tuple[int, int, int]) -> TryOutcome:
    rows = sum(s[1] for s in segments)
    return TryOutcome(items=rows, succeeded=rows, failed=0, rows=rows, part=b"", header=None,
                      error=None, seconds=0.0, worker="w", segments=segments)


def test_hive_folder_follows_the_order_of_the_keys() -> None:
    assert hive_folder(["day", "store"], {"store": "s1", "day": "2024-01-02"}) == (
        "day=2024-01-02/store=s1")


@pytest.mark.parametrize("value", [None, ""])
def test_null_and_empty_values_are_the_hive_default_partition(value: str | None) -> None:
    assert hive_folder(["store"], {"store": value}) == "store=__HIVE_DEFAULT_PARTITION__"


def test_hive_folder_escapes_values_and_keys_for_urls() -> None:
    folder = hive_folder(["a key"], {"a key": "x/y=z %é?"})
    assert folder == "a%20key=x%2Fy%3Dz%20%25%C3%A9%3F"
    assert folder.count("/") == 0 and folder.count("=") == 1


def test_hive_folder_keeps_plain_values_as_they_are() -> None:
    assert hive_folder(["region"], {"region": "007-eu_west.1~"}) == "region=007-eu_west.1~"


@pytest.mark.parametrize(("name", "prefix", "fmt", "expected"), [
    ("in/a/b.csv", "in", "csv", "a/b.csv"),
    ("in/a/b.csv", "in", "parquet", "a/b.parquet"),
    ("in/a/b.csv", "in", "jsonl", "a/b.jsonl"),
    ("in/img/1.png", "in", "text", "img/1.txt"),
    ("in/a.tar.gz", "in", "text", "a.tar.txt"),
    ("in/README", "in", "csv", "README.csv"),
    ("data/x.parquet", "", "csv", "data/x.csv"),
    ("in/day=1/x.csv", "in", "csv", "day=1/x.csv"),
])
def test_per_file_name_keeps_the_relative_path_with_the_format_extension(
        name: str, prefix: str, fmt: str, expected: str) -> None:
    assert per_file_name(name, prefix, fmt) == expected


def test_combine_segments_shifts_positions_and_merges_adjacent_runs() -> None:
    pieces = [(0, outcome((0, 1, 5), (1, 1, 6))), (3, outcome((0, 1, 4))),
              (4, outcome((0, 1, 2), (1, 1, 3)))]
    assert combine_segments(pieces) == ((0, 1, 5), (1, 1, 6), (3, 1, 4), (4, 1, 2), (5, 1, 3))


def test_combine_segments_of_tabular_windows_joins_runs_of_one_slice() -> None:
    pieces = [(0, outcome((0, 40, 400))), (0, outcome((0, 9, 90), (1, 50, 500)))]
    assert combine_segments(pieces) == ((0, 49, 490), (1, 50, 500))


def test_combine_segments_of_nothing_is_empty() -> None:
    assert combine_segments([]) == ()
    assert combine_segments([(2, outcome())]) == ()


def test_segments_round_trip_through_their_blob() -> None:
    segments = ((0, 3, 30), (2, 1, 7))
    assert decode_segments(encode_segments(segments)) == segments
    assert segments_blob_name("jobs/j/results/0000001-t1.csv") == (
        "jobs/j/results/0000001-t1.csv.segments.json")


def test_plan_gives_one_file_per_input_with_its_pieces_in_order() -> None:
    names = ["in/a.csv", "in/b.csv"]
    plan = plan_per_input_file([
        (0, "id\n", ((0, 10, 100),), names),
        (1, "id\n", ((0, 5, 50), (1, 7, 70)), names),
        (2, "id\n", ((1, 3, 30),), names),
    ], "in", "csv")
    assert plan == [
        OutputFile("a.csv", "in/a.csv", [Piece(0, 0, 100, 10), Piece(1, 0, 50, 5)],
                   [(0, "id\n"), (1, "id\n")]),
        OutputFile("b.csv", "in/b.csv", [Piece(1, 50, 70, 7), Piece(2, 0, 30, 3)],
                   [(1, "id\n"), (2, "id\n")]),
    ]
    assert [f.rows for f in plan] == [15, 10]


def test_plan_for_parquet_cuts_parts_by_rows() -> None:
    plan = plan_per_input_file([(4, "", ((0, 2, 0), (1, 3, 0)), ["a.csv", "b.csv"])], "",
                               "parquet")
    assert [(f.name, f.pieces) for f in plan] == [
        ("a.parquet", [Piece(4, 0, 2, 2)]), ("b.parquet", [Piece(4, 2, 3, 3)])]


def test_plan_refuses_two_inputs_with_the_same_output_name() -> None:
    with pytest.raises(OutputError) as raised:
        plan_per_input_file([(0, "", ((0, 1, 4), (1, 1, 4)), ["in/x.png", "in/x.jpg"])], "in",
                            "text")
    message = str(raised.value)
    assert "'in/x.png' and 'in/x.jpg' would both be written as 'x.txt'" in message


@pytest.mark.parametrize("name", ["in/errors.txt", "in/logs/a.txt", "in/job_result.csv"])
def test_plan_refuses_an_input_named_like_a_report(name: str) -> None:
    with pytest.raises(OutputError, match="where batchfx writes its own reports"):
        plan_per_input_file([(0, "", ((0, 1, 4),), [name])], "in", "text")


def test_plan_refuses_a_segment_of_an_unknown_input() -> None:
    with pytest.raises(OutputError, match="mini-batch 3 has rows of input 2, but only 1"):
        plan_per_input_file([(3, "", ((2, 1, 4),), ["in/a.txt"])], "in", "text")
