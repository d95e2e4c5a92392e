"""Pure partitioning: pack listed files into mini-batches and lay out manifest pages."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from batchfx.sizes import MiniBatchSize
from batchfx.storage.blobs import BlobRef

__all__ = ["ManifestEntry", "ManifestPage", "build_manifest_page", "pack_files", "select_files"]


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


def build_manifest_page(
    container: str, prefix: str, mini_batches: list[list[BlobRef]], first_index: int
) -> ManifestPage:
    """Lay out mini-batches as JSON lines so a scorer reads only its own byte range."""
    chunks: list[bytes] = []
    entries: list[ManifestEntry] = []
    offset = 0
    for i, batch in enumerate(mini_batches):
        line = json.dumps(
            {
                "index": first_index + i,
                "container": container,
                "prefix": prefix,
                "items": [[r.name, r.size, r.etag] for r in batch],
            },
            separators=(",", ":"),
        ).encode() + b"\n"
        entries.append(ManifestEntry(first_index + i, len(batch), offset, len(line)))
        chunks.append(line)
        offset += len(line)
    return ManifestPage(b"".join(chunks), entries)


@dataclass(frozen=True)
class ManifestLine:
    """One mini-batch read back from its manifest range."""

    index: int
    container: str
    prefix: str
    items: list[BlobRef]


def parse_manifest_line(data: bytes) -> ManifestLine:
    """Read one mini-batch's line (as written by ``build_manifest_page``)."""
    body = json.loads(data)
    return ManifestLine(
        int(body["index"]),
        str(body["container"]),
        str(body.get("prefix", "")),
        [BlobRef(str(n), int(s), str(e)) for n, s, e in body["items"]],
    )
