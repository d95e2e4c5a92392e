"""Pure partitioning: pack listed files into mini-batches and lay out manifest pages."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from batchfx.core.errors import InputError
from batchfx.core.file_refs import BlobRef
from batchfx.core.sizes import MiniBatchSize
from batchfx.tabular.slices import InputFile, Slice, slice_from_wire

__all__ = [
    "PER_PAGE",
    "ManifestEntry",
    "ManifestLine",
    "ManifestPage",
    "Packer",
    "TabularLine",
    "build_manifest_page",
    "folder_values",
    "item_name",
    "key_group",
    "layout_manifest_page",
    "message_groups",
    "pack_files",
    "parse_manifest_line",
    "select_files",
]

T = TypeVar("T")


def select_files(refs: Iterable[BlobRef], prefix: str, glob: str | None) -> Iterator[BlobRef]:
    """Files under ``prefix`` whose name relative to it matches ``glob`` (all when None).

    Names starting with ``_`` or ``.`` are markers, not data (``_SUCCESS``), and are skipped.
    """
    base = f"{prefix}/" if prefix else ""
    for ref in refs:
        if ref.name.endswith("/") or (base and not ref.name.startswith(base)):
            continue  # folder markers, and siblings such as "inputs2/" under prefix "inputs"
        if ref.name.rsplit("/", 1)[-1].startswith(("_", ".")):
            continue  # hidden files as Spark/Hadoop write them: _SUCCESS, _committed, .crc
        if glob is None or fnmatch.fnmatchcase(ref.name[len(base) :], glob):
            yield ref


def pack_files(refs: Iterable[BlobRef], limit: MiniBatchSize) -> Iterator[list[BlobRef]]:
    """Group files in listing order: at most ``count`` files, or at most ``bytes`` of input.

    With a byte limit a file bigger than the limit gets a mini-batch of its own, so one huge
    file never shares a mini-batch with thousands of small ones.
    """
    current: list[BlobRef] = []
    current_bytes = 0
    for ref in refs:
        if limit.count is not None:
            full = len(current) >= limit.count
        else:
            assert limit.bytes is not None
            full = bool(current) and current_bytes + ref.size > limit.bytes
        if full:
            yield current
            current, current_bytes = [], 0
        current.append(ref)
        current_bytes += ref.size
    if current:
        yield current


@dataclass
class _Open(Generic[T]):
    items: list[T] = field(default_factory=list)
    weight: int = 0


class Packer(Generic[T]):
    """Fill mini-batches in order up to ``limit`` (files, bytes or rows), one open mini-batch
    per group: items of different groups (partition key values) never share a mini-batch.

    An item heavier than the limit gets a mini-batch of its own, as in :func:`pack_files`.
    """

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"limit: {limit!r} must be greater than 0")
        self.limit = limit
        self._open: dict[Hashable, _Open[T]] = {}

    def add(self, item: T, weight: int, group: Hashable = None) -> list[tuple[Hashable, list[T]]]:
        """Add an item; returns the mini-batches it closed (never the one it went into)."""
        current = self._open.setdefault(group, _Open())
        closed: list[tuple[Hashable, list[T]]] = []
        if current.items and current.weight + weight > self.limit:
            closed.append((group, current.items))
            current = self._open[group] = _Open()
        current.items.append(item)
        current.weight += weight
        return closed

    def drop(self, group: Hashable = None) -> list[T]:
        """Forget the open mini-batch of ``group`` (the caller resumes before its items)."""
        found = self._open.pop(group, None)
        return found.items if found is not None else []

    def flush(self) -> list[tuple[Hashable, list[T]]]:
        """Close every open mini-batch, in the order their groups first appeared."""
        closed = [(group, batch.items) for group, batch in self._open.items() if batch.items]
        self._open.clear()
        return closed


def folder_values(relative: str) -> dict[str, str]:
    """Hive-style ``key=value`` folders of a path relative to the input prefix."""
    values: dict[str, str] = {}
    for segment in relative.split("/")[:-1]:
        key, sep, value = segment.partition("=")
        if sep and key:
            values[unquote(key)] = unquote(value)
    return values


def key_group(name: str, prefix: str, keys: list[str]) -> tuple[str, ...]:
    """The values of ``keys`` in a file's ``key=value`` folders; InputError names a gap."""
    base = f"{prefix}/" if prefix else ""
    relative = name[len(base):] if base and name.startswith(base) else name
    values = folder_values(relative)
    missing = [k for k in keys if k not in values]
    if missing:
        example = "/".join(f"{k}=<value>" for k in keys)
        raise InputError(
            f"partition_keys: {name!r} has no {missing[0]}=<value> folder in its path — with "
            f"partition_keys on file inputs every file must lie under key=value folders for "
            f"each key (Hive style), e.g. {base}{example}/{relative.rsplit('/', 1)[-1]}")
    return tuple(values[k] for k in keys)


@dataclass(frozen=True)
class ManifestEntry:
    """Where one mini-batch's line lies in its manifest page."""

    index: int
    items: int
    offset: int
    length: int


@dataclass(frozen=True)
class ManifestPage:
    """A JSON-lines blob body with one line per mini-batch, and the lines' byte ranges."""

    body: bytes
    entries: list[ManifestEntry]


# Mini-batches of a tabular input per manifest page (a page may end inside a file).
PER_PAGE = 500
# Consecutive mini-batches of a page sent in one queue message, at most: fewer messages
# spare queue calls (a send, a receive's share and a delete each), at least PER_MESSAGE_SPREAD
# messages a page keep a small job spread over many instances; MESSAGES_PER_PLACE messages
# per place (see message_groups) are enough for a job that says how many it runs on.
MAX_PER_MESSAGE = 8
PER_MESSAGE_SPREAD = 64
MESSAGES_PER_PLACE = 4


def message_groups(entries: Sequence[T], places: int | None = None) -> list[list[T]]:
    """A page's mini-batches in the groups that go out as one message each.

    ``places``: how many of the job's mini-batches its instances hold at once (node_count
    times process_count_per_node, two each: one running, the next one staged). A page then
    goes out in at least MESSAGES_PER_PLACE messages a place (at most PER_MESSAGE_SPREAD), so
    a small job for one instance needs fewer messages while every place still has work.
    """
    spread = PER_MESSAGE_SPREAD if places is None else \
        max(1, min(PER_MESSAGE_SPREAD, MESSAGES_PER_PLACE * places))
    size = max(1, min(MAX_PER_MESSAGE, len(entries) // spread))
    return [list(entries[i:i + size]) for i in range(0, len(entries), size)]


def layout_manifest_page(
    bodies: list[tuple[dict[str, Any], int]], first_index: int
) -> ManifestPage:
    """Lay out (line body, items) pairs as JSON lines numbered from ``first_index``."""
    chunks: list[bytes] = []
    entries: list[ManifestEntry] = []
    offset = 0
    for i, (body, items) in enumerate(bodies):
        line = json.dumps({"index": first_index + i, **body}, separators=(",", ":")).encode()
        line += b"\n"
        entries.append(ManifestEntry(first_index + i, items, offset, len(line)))
        chunks.append(line)
        offset += len(line)
    return ManifestPage(b"".join(chunks), entries)


def build_manifest_page(
    container: str, prefix: str, mini_batches: list[list[BlobRef]], first_index: int,
    groups: Sequence[Mapping[str, str]] | None = None, input_name: str | None = None,
) -> ManifestPage:
    """Lay out mini-batches as JSON lines so a scorer reads only its own byte range.
    ``input_name``: which of a job's several inputs they come from."""
    bodies: list[tuple[dict[str, Any], int]] = []
    for i, batch in enumerate(mini_batches):
        body: dict[str, Any] = {"container": container, "prefix": prefix,
                                "items": [[r.name, r.size, r.etag] for r in batch]}
        if groups is not None:
            body["partition_key_value"] = dict(groups[i])
        if input_name:
            body["input"] = input_name
        bodies.append((body, len(batch)))
    return layout_manifest_page(bodies, first_index)


@dataclass(frozen=True)
class TabularLine:
    """The slices of a tabular mini-batch and what is known of its rows."""

    format: str
    slices: list[Slice]
    rows: int | None  # exact when every slice's count is known
    estimate: int  # rows as planned: exact, else estimated


@dataclass(frozen=True)
class ManifestLine:
    """One mini-batch read back from its manifest range."""

    index: int
    container: str
    prefix: str
    items: list[BlobRef]  # files; for tabular inputs one entry per slice, named by it
    partition_key_value: dict[str, str | None] = field(default_factory=dict)
    tabular: TabularLine | None = None
    input_name: str | None = None  # of one of a job's several inputs

    @property
    def item_count(self) -> int:
        """Items of the mini-batch: files, or rows of a tabular input (perhaps estimated)."""
        return self.tabular.estimate if self.tabular is not None else len(self.items)


def item_name(line: ManifestLine, name: str) -> str:
    """How reports name an item (a file, or a tabular slice ``file#range``): its path
    relative to the input folder the job names, as Azure ML shows it (after the input's
    name, for a job of several inputs)."""
    base = f"{line.prefix.rstrip('/')}/" if line.prefix else ""
    relative = name[len(base):] if base and name.startswith(base) else name.lstrip("/")
    return f"{line.input_name}/{relative}" if line.input_name else relative


def parse_manifest_line(data: bytes) -> ManifestLine:
    """Read one mini-batch's line (as written by ``layout_manifest_page``)."""
    body = json.loads(data)
    keys = {str(k): (None if v is None else str(v))
            for k, v in body.get("partition_key_value", {}).items()}
    if "slices" not in body:
        return ManifestLine(
            int(body["index"]),
            str(body["container"]),
            str(body.get("prefix", "")),
            [BlobRef(str(n), int(s), str(e)) for n, s, e in body["items"]],
            keys,
            input_name=body.get("input"),
        )
    files = [InputFile.from_wire(f) for f in body["files"]]
    slices = [slice_from_wire(s, files) for s in body["slices"]]
    rows = body.get("rows")
    tabular = TabularLine(str(body["format"]), slices, None if rows is None else int(rows),
                          int(body["estimate"]))
    items = [BlobRef(s.describe(), s.size, s.file.etag) for s in slices]
    return ManifestLine(int(body["index"]), str(body["container"]), str(body.get("prefix", "")),
                        items, keys, tabular, body.get("input"))
