"""Mini-batch sizes: a file count, a byte size such as ``"64MB"`` (1024-based, as Azure ML),
or, for tabular inputs, a row count such as ``"10000 rows"``."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_FILE_COUNT",
    "DEFAULT_TABULAR_BYTES",
    "MiniBatchSize",
    "format_bytes",
    "parse_mini_batch_size",
]

DEFAULT_FILE_COUNT = 10
DEFAULT_TABULAR_BYTES = 1024**2

FILE_EXPECTED = "expected a file count like 10 or a size like '64MB' (KB/MB/GB, 1024-based)"
TABULAR_EXPECTED = (
    "expected a size in bytes like 1048576 or '1MB' (KB/MB/GB, 1024-based), "
    "or a row count like '10000 rows'"
)
ROWS_FOR_FILES = (
    "a row count applies to tabular inputs only; for files give a count like 10 or a size "
    "like '64MB', or set inputs.type: tabular"
)

# Azure ML's own pattern is ^\d+([kKmMgG][bB])*$; we take one unit (a plain B too) and
# tolerate a space before it, but never a repeated unit such as "1KBKB".
_SIZE_RE = re.compile(r"^(\d+)\s*([kKmMgG]?[bB])?$")
_ROWS_RE = re.compile(r"^(\d+)\s*rows?$", re.IGNORECASE)
_UNIT_FACTORS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@dataclass(frozen=True)
class MiniBatchSize:
    """How much goes into one mini-batch: ``count`` files, ``bytes`` of input or ``rows`` of a
    tabular input (exactly one is set)."""

    count: int | None = None
    bytes: int | None = None
    rows: int | None = None

    def __post_init__(self) -> None:
        limits = [v for v in (self.count, self.bytes, self.rows) if v is not None]
        if len(limits) != 1:
            raise ValueError("MiniBatchSize: set exactly one of count, bytes and rows")
        if limits[0] <= 0:
            raise ValueError(f"MiniBatchSize: the limit must be greater than 0, got {limits[0]}")

    @property
    def is_count(self) -> bool:
        """True when the mini-batch is bounded by a number of files."""
        return self.count is not None

    @property
    def limit(self) -> int:
        """The one limit that is set, in its own unit."""
        value = self.count if self.count is not None else self.bytes
        value = value if value is not None else self.rows
        assert value is not None
        return value

    def describe(self) -> str:
        """Human-readable form, e.g. ``10 files``, ``64.0 MiB`` or ``10000 rows``."""
        if self.count is not None:
            return f"{self.count} file" if self.count == 1 else f"{self.count} files"
        if self.rows is not None:
            return f"{self.rows} row" if self.rows == 1 else f"{self.rows} rows"
        assert self.bytes is not None
        return format_bytes(self.bytes)


def parse_mini_batch_size(value: object, *, tabular: bool) -> MiniBatchSize:
    """Parse ``mini_batch_size``; ``None`` gives the default (10 files, or 1MB for tabular).

    Tabular inputs also take ``"<n> rows"``; a plain number is bytes there, as in Azure ML.
    """
    expected = TABULAR_EXPECTED if tabular else FILE_EXPECTED
    if value is None:
        if tabular:
            return MiniBatchSize(bytes=DEFAULT_TABULAR_BYTES)
        return MiniBatchSize(count=DEFAULT_FILE_COUNT)
    # bool is an int subclass: `mini_batch_size: true` must not mean one file.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(expected)
    if isinstance(value, int):
        number, unit = value, None
    elif (rows := _ROWS_RE.match(value.strip())) is not None:
        if not tabular:
            raise ValueError(ROWS_FOR_FILES)
        if int(rows.group(1)) <= 0:
            raise ValueError(f"must be greater than 0; {expected}")
        return MiniBatchSize(rows=int(rows.group(1)))
    else:
        match = _SIZE_RE.match(value.strip())
        if match is None:
            raise ValueError(expected)
        number, unit = int(match.group(1)), match.group(2)
    if number <= 0:
        raise ValueError(f"must be greater than 0; {expected}")
    if unit is not None:
        return MiniBatchSize(bytes=number * _UNIT_FACTORS[unit.lower()])
    if tabular:
        return MiniBatchSize(bytes=number)
    return MiniBatchSize(count=number)


def format_bytes(n: int) -> str:
    """Human-readable 1024-based size, e.g. ``format_bytes(64 * 1024**2) == "64.0 MiB"``."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in _BINARY_UNITS[1:]:
        size /= 1024
        if round(size, 1) < 1024 or unit == _BINARY_UNITS[-1]:
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover
