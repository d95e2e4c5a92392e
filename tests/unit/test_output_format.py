"""Formatting of run()'s returned rows for the append_row output."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from batchfx.errors import OutputError
from batchfx.output_format import format_rows, merge_parquet_parts

FRAME = pd.DataFrame({"file": ["a.txt", "b.txt"], "length": [5, 12]})


def test_text_list_writes_str_of_each_element() -> None:
    assert format_rows(["a 1", 2, 2.5, None], "text", False) == (b"a 1\n2\n2.5\nNone\n", None)


def test_text_list_has_no_header_even_when_asked() -> None:
    assert format_rows(("x",), "text", True) == (b"x\n", None)


def test_text_dataframe_rows_are_space_separated() -> None:
    assert format_rows(FRAME, "text", False) == (b"a.txt 5\nb.txt 12\n", None)


def test_text_dataframe_header_is_column_names() -> None:
    assert format_rows(FRAME, "text", True) == (b"a.txt 5\nb.txt 12\n", b"file length\n")


@pytest.mark.parametrize("output_format", ["text", "csv", "jsonl", "parquet"])
def test_empty_result_writes_nothing(output_format: str) -> None:
    assert format_rows([], output_format, True)[0] == b""
    assert format_rows(FRAME.iloc[:0], output_format, True)[0] == b""


def test_csv_list_of_scalars_is_one_result_column() -> None:
    assert format_rows(["a", "b,c"], "csv", False) == (b'a\n"b,c"\n', b"result\n")


def test_csv_list_of_dicts_takes_columns_from_keys() -> None:
    part, header = format_rows([{"a": 1, "b": 2}, {"b": 3, "c": 4}], "csv", False)
    assert header == b"a,b,c\n"
    assert part == b"1,2,\n,3,4\n"


def test_csv_list_of_sequences_pads_columns() -> None:
    assert format_rows([(1, 2), [3]], "csv", False) == (b"1,2\n3,\n", b"c0,c1\n")


def test_csv_dataframe() -> None:
    assert format_rows(FRAME, "csv", False) == (b"a.txt,5\nb.txt,12\n", b"file,length\n")


def test_csv_empty_dataframe_still_names_its_columns() -> None:
    assert format_rows(FRAME.iloc[:0], "csv", False) == (b"", b"file,length\n")


def test_jsonl_list_one_value_per_line_with_str_fallback() -> None:
    part, header = format_rows([{"a": 1}, "x", dt.date(2024, 1, 2)], "jsonl", False)
    assert header is None
    assert [json.loads(line) for line in part.decode().splitlines()] == [
        {"a": 1},
        "x",
        "2024-01-02",
    ]


def test_jsonl_dataframe_rows_are_records() -> None:
    part, _ = format_rows(FRAME, "jsonl", False)
    assert [json.loads(line) for line in part.decode().splitlines()] == [
        {"file": "a.txt", "length": 5},
        {"file": "b.txt", "length": 12},
    ]


def test_parquet_dataframe_round_trips() -> None:
    part, header = format_rows(FRAME, "parquet", False)
    assert header is None
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(part)), FRAME, check_dtype=False)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ([{"a": 1}, {"a": 2}], {"a": [1, 2]}),
        (["x", "y"], {"result": ["x", "y"]}),
        ([(1, "x"), (2, "y")], {"c0": [1, 2], "c1": ["x", "y"]}),
    ],
)
def test_parquet_lists_become_tables(
    result: list[object], expected: dict[str, list[object]]
) -> None:
    part, _ = format_rows(result, "parquet", False)
    assert pd.read_parquet(io.BytesIO(part)).to_dict(orient="list") == expected


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="output_format: 'xml'"):
        format_rows(["a"], "xml", False)


def test_merge_parquet_parts_concatenates_in_order(tmp_path: Path) -> None:
    first, _ = format_rows(FRAME, "parquet", False)
    second, _ = format_rows(FRAME.iloc[::-1], "parquet", False)
    sink = tmp_path / "results.parquet"
    assert merge_parquet_parts([(0, first), (1, b""), (2, second)], str(sink)) == 4
    assert pd.read_parquet(sink)["file"].tolist() == ["a.txt", "b.txt", "b.txt", "a.txt"]


def test_merge_parquet_parts_refuses_a_different_schema(tmp_path: Path) -> None:
    first, _ = format_rows(FRAME, "parquet", False)
    other, _ = format_rows(pd.DataFrame({"file": ["c"], "score": [0.5]}), "parquet", False)
    with pytest.raises(OutputError) as raised:
        merge_parquet_parts([(0, first), (3, other)], str(tmp_path / "results.parquet"))
    message = str(raised.value)
    assert "mini-batch 3" in message and "mini-batch 0" in message
    assert "score: double" in message and "length: int64" in message


def test_merge_parquet_parts_writes_to_a_file_object() -> None:
    part, _ = format_rows(["x"], "parquet", False)
    sink = io.BytesIO()
    assert merge_parquet_parts([(0, part)], sink) == 1
    assert pd.read_parquet(io.BytesIO(sink.getvalue()))["result"].tolist() == ["x"]
