"""A job's progress kept between checks, so that a check reads only the rows written since.

Pure. Counts are sums of the mini-batch rows, as ``progress.summarize`` makes them, but a
finished row is counted once and remembered (one bit per mini-batch): a finished row is
never written again, so the next check needs only the rows written since the newest one
seen, less a margin (table ``Timestamp``, the service's clock), and only from the first
mini-batch not counted yet (RowKey): mini-batches finish about in order, so a check reads
about the rows running. A row the margin missed is found by the full read that confirms
a job looks finished, or by the periodic one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from batchfx.core.progress import Progress, init_error_text

__all__ = ["MARGIN", "ROW_COLUMNS", "Tally", "summarize"]

# Rows written this long before the newest row seen are read again by the next check: a
# write's Timestamp is set by the service as it commits, so this only needs to cover
# writes in flight and clocks of the service's partitions.
MARGIN = timedelta(seconds=5)
# The columns a check reads (besides the keys and Timestamp): the counts, not the errors
# (an init() error's text is read from its row once: ``init_error_at``).
ROW_COLUMNS = ["status", "succeeded", "failed", "rows", "error_phase", "items",
               "items_planned"]


@dataclass
class Tally:
    """Sums of a job's finished mini-batches and which ones they are."""

    done: bytearray = field(default_factory=bytearray)  # bit i: mini-batch i finished
    running: set[int] = field(default_factory=set)
    succeeded: int = 0
    failed: int = 0
    items_succeeded: int = 0
    items_failed: int = 0
    rows: int = 0
    correction: int = 0  # items read less items planned, of finished mini-batches
    init_error: str = ""
    init_error_at: int = -1  # the first row failed in init(), its text not read yet
    newest: str = ""  # ISO time of the newest row Timestamp seen ("" before any)
    checks: int = 0  # reads since the last full one
    exact: bool = False  # from a full read of rows that were all finished

    def is_done(self, index: int) -> bool:
        """Whether mini-batch ``index`` was counted as finished."""
        byte = index >> 3
        return byte < len(self.done) and bool(self.done[byte] & (1 << (index & 7)))

    def _mark(self, index: int) -> None:
        byte = index >> 3
        if byte >= len(self.done):
            self.done.extend(bytes(byte + 1 - len(self.done)))
        self.done[byte] |= 1 << (index & 7)

    def first_open(self) -> int:
        """The lowest mini-batch not counted as finished: a read need not ask for rows
        before it, which are all counted."""
        for byte, bits in enumerate(self.done):
            if bits != 0xFF:
                return byte * 8 + next(i for i in range(8) if not bits & (1 << i))
        return len(self.done) * 8

    def since(self) -> datetime | None:
        """Rows written from when the next (incremental) read must take."""
        if not self.newest:
            return None
        return datetime.fromisoformat(self.newest) - MARGIN

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Take in rows read from the table (each with ``RowKey`` and, when known, its
        ``Timestamp`` as a datetime)."""
        for row in rows:
            index = int(row["RowKey"])
            stamp = row.get("Timestamp")
            if isinstance(stamp, datetime):
                text = stamp.astimezone(UTC).isoformat()
                self.newest = max(self.newest, text)
            if self.is_done(index):
                continue
            status = row.get("status")
            if status not in ("succeeded", "failed"):
                self.running.add(index)
                continue
            self._mark(index)
            self.running.discard(index)
            if status == "succeeded":
                self.succeeded += 1
            else:
                self.failed += 1
                if row.get("error_phase") in ("init", "load") and not self.init_error:
                    if "error_message" in row:
                        self.init_error = init_error_text(row)
                    elif self.init_error_at < 0:
                        self.init_error_at = index
            self.items_succeeded += int(row.get("succeeded") or 0)
            self.items_failed += int(row.get("failed") or 0)
            self.rows += int(row.get("rows") or 0)
            self.correction += int(row.get("items") or 0) - int(row.get("items_planned") or 0)

    def progress(self, *, items_total: int, mini_batches_total: int, partitioned: bool,
                 elapsed_s: float, items_estimated: bool = False) -> Progress:
        """The job's progress (as ``progress.summarize`` would sum it from every row)."""
        done = self.succeeded + self.failed
        if items_estimated:
            items_total = max(items_total + self.correction,
                              self.items_succeeded + self.items_failed)
        all_done = partitioned and done >= mini_batches_total
        return Progress(
            items_total=items_total,
            mini_batches_total=mini_batches_total,
            partitioned=partitioned,
            mini_batches_succeeded=self.succeeded,
            mini_batches_failed=self.failed,
            mini_batches_running=len(self.running),
            items_succeeded=self.items_succeeded,
            items_failed=self.items_failed,
            rows=self.rows,
            init_error=self.init_error or (
                f"init() failed in mini-batch {self.init_error_at}" if self.init_error_at >= 0
                else ""),
            elapsed_s=elapsed_s,
            items_estimated=items_estimated and not all_done,
        )

    def to_json(self) -> bytes:
        """The tally as kept between checks."""
        values = {k: v for k, v in self.__dict__.items() if k not in ("done", "running")}
        values["done"] = base64.b64encode(bytes(self.done)).decode()
        values["running"] = sorted(self.running)
        return json.dumps(values, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Tally:
        """Read a kept tally back."""
        values = json.loads(data)
        values["done"] = bytearray(base64.b64decode(values.get("done", "")))
        values["running"] = set(values.get("running", ()))
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def summarize(rows: Iterable[dict[str, Any]], *, items_total: int, mini_batches_total: int,
              partitioned: bool, elapsed_s: float, items_estimated: bool = False) -> Progress:
    """Sum every row of a job at once (``status``, ``succeeded``, ``failed``, ``rows``,
    ``error_phase``…; a row without ``RowKey`` stands for the mini-batch of its position).

    With ``items_estimated``, ``items_total`` holds each mini-batch's planned rows; a done
    row (``items`` read vs ``items_planned``) replaces its estimate by its count.
    """
    tally = Tally()
    tally.add({"RowKey": position, **row} for position, row in enumerate(rows))
    return tally.progress(items_total=items_total, mini_batches_total=mini_batches_total,
                          partitioned=partitioned, elapsed_s=elapsed_s,
                          items_estimated=items_estimated)
