"""Mini-batch sizes: file counts and 1024-based byte sizes."""

from __future__ import annotations

import pytest

from batchfx.core.sizes import (
    DEFAULT_FILE_COUNT,
    DEFAULT_TABULAR_BYTES,
    MiniBatchSize,
    format_bytes,
    parse_mini_batch_size,
)

KB, MB, GB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10, MiniBatchSize(count=10)),
        (1, MiniBatchSize(count=1)),
        ("10", MiniBatchSize(count=10)),
        (" 25 ", MiniBatchSize(count=25)),
        ("64MB", MiniBatchSize(bytes=64 * MB)),
        ("64mb", MiniBatchSize(bytes=64 * MB)),
        ("1kb", MiniBatchSize(bytes=KB)),
        ("1Kb", MiniBatchSize(bytes=KB)),
        ("2GB", MiniBatchSize(bytes=2 * GB)),
        ("10B", MiniBatchSize(bytes=10)),
        ("10b", MiniBatchSize(bytes=10)),
        ("64 MB", MiniBatchSize(bytes=64 * MB)),
        (None, MiniBatchSize(count=DEFAULT_FILE_COUNT)),
    ],
)
def test_file_inputs_take_a_count_or_a_size(value: object, expected: MiniBatchSize) -> None:
    assert parse_mini_batch_size(value, tabular=False) == expected


@pytest.mark.parametrize(
    ("value", "expected_bytes"),
    [
        (100, 100),
        ("100", 100),
        ("1MB", MB),
        ("512kb", 512 * KB),
        ("3GB", 3 * GB),
        (None, DEFAULT_TABULAR_BYTES),
    ],
)
def test_tabular_inputs_read_every_value_as_bytes(value: object, expected_bytes: int) -> None:
    assert parse_mini_batch_size(value, tabular=True) == MiniBatchSize(bytes=expected_bytes)


def test_tabular_default_is_one_mebibyte() -> None:
    assert DEFAULT_TABULAR_BYTES == 1024 * 1024


@pytest.mark.parametrize(
    "value",
    [0, "0", "0MB", -1, "-5", True, False, 1.5, "1.5MB", "ten", "", "1TB", "1KBKB", "MB", [10]],
)
def test_bad_file_sizes_say_what_is_allowed(value: object) -> None:
    with pytest.raises(ValueError, match=r"file count like 10 or a size like '64MB'") as info:
        parse_mini_batch_size(value, tabular=False)
    assert "KB/MB/GB, 1024-based" in str(info.value)


@pytest.mark.parametrize("value", [0, "0", "0kb", -3])
def test_zero_and_negative_sizes_say_greater_than_zero(value: object) -> None:
    with pytest.raises(ValueError, match="must be greater than 0"):
        parse_mini_batch_size(value, tabular=False)


@pytest.mark.parametrize("value", ["ten", True, 2.0, "0"])
def test_bad_tabular_sizes_ask_for_bytes(value: object) -> None:
    with pytest.raises(ValueError, match=r"size in bytes like 1048576 or '1MB'"):
        parse_mini_batch_size(value, tabular=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"count": 1, "bytes": 1}, "exactly one"),
        ({"count": 0}, "greater than 0"),
        ({"bytes": -1}, "greater than 0"),
    ],
)
def test_mini_batch_size_holds_exactly_one_positive_limit(
    kwargs: dict[str, int], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        MiniBatchSize(**kwargs)


@pytest.mark.parametrize(
    ("size", "text", "is_count"),
    [
        (MiniBatchSize(count=1), "1 file", True),
        (MiniBatchSize(count=10), "10 files", True),
        (MiniBatchSize(bytes=64 * MB), "64.0 MiB", False),
    ],
)
def test_describe_names_the_unit(size: MiniBatchSize, text: str, is_count: bool) -> None:
    assert size.describe() == text
    assert size.is_count is is_count


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (MB - 1, "1.0 MiB"),
        (64 * MB, "64.0 MiB"),
        (3 * GB, "3.0 GiB"),
        (1024**4, "1.0 TiB"),
        (2048 * 1024**5, "2048.0 PiB"),
    ],
)
def test_format_bytes_is_1024_based(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(("value", "rows"), [("10000 rows", 10_000), ("1 row", 1),
                                             ("250ROWS", 250), (" 7 rows ", 7)])
def test_tabular_inputs_take_a_row_count(value: str, rows: int) -> None:
    size = parse_mini_batch_size(value, tabular=True)
    assert size == MiniBatchSize(rows=rows)
    assert size.limit == rows
    assert size.describe() == (f"{rows} row" if rows == 1 else f"{rows} rows")


def test_a_row_count_for_file_inputs_says_it_is_for_tabular_inputs() -> None:
    with pytest.raises(ValueError, match="row count applies to tabular inputs only"):
        parse_mini_batch_size("100 rows", tabular=False)


def test_zero_rows_is_refused() -> None:
    with pytest.raises(ValueError, match="must be greater than 0"):
        parse_mini_batch_size("0 rows", tabular=True)


def test_bad_tabular_sizes_mention_row_counts() -> None:
    with pytest.raises(ValueError, match="or a row count like '10000 rows'"):
        parse_mini_batch_size("many", tabular=True)
