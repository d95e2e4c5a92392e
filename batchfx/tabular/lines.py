"""Line boundaries in CSV and JSON-lines bytes: where to cut, how many rows, odd quotes.

A row is one non-empty line (a line holding only ``\\r`` is empty too), as pyarrow's
readers skip empty lines. CSV records must not hold line breaks inside quoted fields;
a line with an odd number of ``"`` is how such a record shows, and is reported. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LineScanner", "Sample", "line_start_after", "sample_lines"]

_NEWLINE, _CR, _QUOTE = 10, 13, 34
Offsets = npt.NDArray[np.int64]


def line_start_after(data: bytes, offset: int) -> int | None:
    """The first line start after the first newline of ``data`` (read from ``offset``)."""
    index = data.find(b"\n")
    return None if index < 0 else offset + index + 1


class LineScanner:
    """Streams bytes that start at a line start; gives the non-empty lines' byte ranges.

    ``odd_quote_at`` is the offset of the first line with an odd number of quotes (only
    with ``quotes``): the sign of a line break inside a quoted CSV field.
    """

    def __init__(self, start: int, *, quotes: bool = False) -> None:
        self.position = start
        self.quotes = quotes
        self.odd_quote_at: int | None = None
        self._line_start = start
        self._last_byte = -1
        self._quote_carry = 0

    def feed(self, chunk: bytes) -> tuple[Offsets, Offsets]:
        """Starts and ends (after the newline) of the non-empty lines completed by ``chunk``."""
        data = np.frombuffer(chunk, dtype=np.uint8)
        base = self.position
        self.position += len(chunk)
        newlines = np.flatnonzero(data == _NEWLINE).astype(np.int64)
        if self.quotes:
            self._count_quotes(data, newlines)
        if not newlines.size:
            if chunk:
                self._last_byte = chunk[-1]
            return np.empty(0, np.int64), np.empty(0, np.int64)
        ends = base + newlines + 1
        starts = np.empty_like(ends)
        starts[0] = self._line_start
        starts[1:] = ends[:-1]
        before = np.where(newlines > 0, data[np.maximum(newlines - 1, 0)], self._last_byte)
        lengths = ends - 1 - starts
        empty = (lengths == 0) | ((lengths == 1) & (before == _CR))
        self._line_start = int(ends[-1])
        self._last_byte = chunk[-1]
        keep = ~empty
        return starts[keep], ends[keep]

    def finish(self) -> tuple[int, int] | None:
        """The last line when the bytes do not end with a newline and it is not empty."""
        length = self.position - self._line_start
        if length == 0 or (length == 1 and self._last_byte == _CR):
            return None
        if self.quotes and self.odd_quote_at is None and self._quote_carry % 2:
            self.odd_quote_at = self._line_start
        return self._line_start, self.position

    def _count_quotes(self, data: npt.NDArray[np.uint8], newlines: Offsets) -> None:
        quotes = np.flatnonzero(data == _QUOTE)
        if not newlines.size:
            self._quote_carry += int(quotes.size)
            return
        line_of = np.searchsorted(newlines, quotes)  # quotes after the last newline: carried
        per_line = np.bincount(line_of, minlength=newlines.size + 1)
        per_line[0] += self._quote_carry
        self._quote_carry = int(per_line[-1])
        odd = np.flatnonzero(per_line[:-1] % 2)
        if odd.size and self.odd_quote_at is None:
            first = int(odd[0])
            start = self._line_start if first == 0 else self.position - len(data) + int(
                newlines[first - 1]) + 1
            self.odd_quote_at = start


@dataclass(frozen=True)
class Sample:
    """Complete non-empty lines seen in a probe: how many, their bytes, an odd-quote line."""

    rows: int
    bytes: int
    odd_quote_at: int | None


def sample_lines(data: bytes, offset: int, *, quotes: bool) -> Sample:
    """Measure the complete lines of ``data``, which starts at a line start at ``offset``."""
    scanner = LineScanner(offset, quotes=quotes)
    starts, ends = scanner.feed(data)
    spanned = int(ends[-1]) - offset if ends.size else 0
    return Sample(int(starts.size), spanned, scanner.odd_quote_at)
