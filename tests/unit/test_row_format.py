"""Formatting of run()'s returned rows for the append_row output."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from batchfx.core.errors import OutputError
from batchfx.core.row_format import (
    common_header,
    format_rows,
    format_segments,
    merge_parquet_parts,
)

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


@pytest.mark.parametrize("output_format", ["text", "csv", "jsonl"])
@pytest.mark.parametrize("result", [FRAME, ["a 1", "b\n2"], [{"x": 1}, {"y": 2}]],
                         ids=["frame", "strings", "dicts"])  # "b\n2": a value with a line break
def test_format_segments_cuts_the_same_bytes_into_runs(output_format: str,
                                                       result: object) -> None:
    whole, header = format_rows(result, output_format, True)  # type: ignore[arg-type]
    part, head, sizes = format_segments(result, output_format, True, [1, 0, 1])  # type: ignore[arg-type]
    assert (part, head) == (whole, header)
    assert sum(sizes) == len(part) and sizes[1] == 0
    if not (isinstance(result, list) and isinstance(result[0], dict)):  # CSV dicts: next test
        first, _ = format_rows(result[:1] if isinstance(result, list) else FRAME.iloc[:1],
                               output_format, True)
        assert part[:sizes[0]] == first


def test_format_segments_of_csv_dicts_keeps_every_run_in_the_same_columns() -> None:
    part, header, sizes = format_segments([{"a": 1}, {"b": 2}], "csv", False, [1, 1])
    assert header == b"a,b\n"
    assert (part[:sizes[0]], part[sizes[0]:]) == (b"1,\n", b",2\n")


def test_format_segments_of_parquet_is_one_file_cut_by_rows() -> None:
    part, header, sizes = format_segments(FRAME, "parquet", False, [1, 1])
    assert header is None and sizes == [0, 0]
    assert pd.read_parquet(io.BytesIO(part))["file"].tolist() == ["a.txt", "b.txt"]


def test_format_segments_refuses_runs_that_do_not_add_up() -> None:
    with pytest.raises(ValueError, match="3 rows in runs but the result has 2"):
        format_segments(FRAME, "csv", False, [2, 1])


def test_common_header_is_the_header_every_mini_batch_shares() -> None:
    headers = [(0, "a,b\n"), (1, ""), (2, "a,b\n")]
    assert common_header(headers, "csv") == "a,b\n"
    assert common_header([(0, ""), (1, "")], "csv") == ""


def test_common_header_refuses_different_csv_columns_naming_both() -> None:
    with pytest.raises(OutputError) as raised:
        common_header([(0, "id,score\n"), (1, "id,score\n"), (5, 'id,"x,y"\n')], "csv",
                      "output 'results.csv'")
    message = str(raised.value)
    assert message.startswith("csv output 'results.csv': mini-batch 5 returned columns "
                              "['id', 'x,y'] but mini-batch 0 returned ['id', 'score']")
    assert "same columns, in the same order, for every mini-batch" in message


def test_common_header_of_text_compares_space_separated_names() -> None:
    with pytest.raises(OutputError, match=r"\['a', 'c'\] but mini-batch 1 returned \['a', 'b'\]"):
        common_header([(1, "a b\n"), (2, "a c\n")], "text")
