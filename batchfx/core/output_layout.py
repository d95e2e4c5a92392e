"""Where a job's rows go besides the one append_row file: Hive-style partition folders
(``partition_output``) and one output file per input file (``output_action:
per_input_file``). Pure: names, segment bookkeeping and plans; ``services.output_writer`` writes.

A part's *segments* say which input each run of its rows came from: ``(position, rows,
bytes)``, position being the file's index in the mini-batch's items (file inputs) or the
slice's index in its slices (tabular); bytes are the run's bytes in a text part (0 in a
Parquet part, which is cut by rows). The scorer stores them next to the part.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from batchfx.core.errors import OutputError
from batchfx.core.script_contract import Segment, TryOutcome

__all__ = [
    "HIVE_DEFAULT_PARTITION",
    "OUTPUT_EXTENSIONS",
    "REPORT_FILES",
    "OutputFile",
    "Piece",
    "combine_segments",
    "decode_segments",
    "encode_segments",
    "hive_folder",
    "per_file_name",
    "plan_per_input_file",
    "segments_blob_name",
]

HIVE_DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
OUTPUT_EXTENSIONS = {"text": "txt", "csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}
# Files finalize writes at the top of every job's output (besides logs/).
REPORT_FILES = frozenset({"job_result.txt", "processed_mini-batches.csv", "errors.csv",
                          "errors.txt", "progress_overview.json", "metrics.json"})


def combine_segments(pieces: Iterable[tuple[int, TryOutcome]]) -> tuple[Segment, ...]:
    """The segments of a part made by joining the pieces' parts in the given order.

    Each piece is ``(offset, outcome)``: the outcome of a run on a sub-range of the
    mini-batch, whose positions are shifted by ``offset`` (file inputs: the sub-range's
    first item; tabular windows: 0, their slice positions are the mini-batch's already).
    Adjacent runs of the same input are merged.
    """
    combined: list[Segment] = []
    for offset, outcome in pieces:
        for position, rows, size in outcome.segments:
            at = position + offset
            if combined and combined[-1][0] == at:
                _, before, before_size = combined[-1]
                combined[-1] = (at, before + rows, before_size + size)
            else:
                combined.append((at, rows, size))
    return tuple(combined)


def segments_blob_name(part: str) -> str:
    """The blob next to a part that holds its segments."""
    return f"{part}.segments.json"


def encode_segments(segments: Sequence[Segment]) -> bytes:
    """The segments blob's body."""
    return json.dumps({"segments": [list(s) for s in segments]},
                      separators=(",", ":")).encode()


def decode_segments(data: bytes) -> tuple[Segment, ...]:
    """Read back :func:`encode_segments`."""
    return tuple((int(p), int(r), int(b)) for p, r, b in json.loads(data)["segments"])


def _hive_escape(text: str) -> str:
    # Percent-encoding of everything but letters, digits and -_.~: what Hive/Spark and
    # pyarrow's hive partitioning decode, and safe in blob names and URLs.
    return quote(text, safe="")


def hive_folder(keys: Sequence[str], values: Mapping[str, str | None]) -> str:
    """``k1=v1/k2=v2`` for a mini-batch's partition key values; a null (or empty) value
    is Hive's ``__HIVE_DEFAULT_PARTITION__``."""
    parts = []
    for key in keys:
        value = values.get(key)
        text = HIVE_DEFAULT_PARTITION if value is None or value == "" else _hive_escape(value)
        parts.append(f"{_hive_escape(key)}={text}")
    return "/".join(parts)


def per_file_name(name: str, prefix: str, output_format: str) -> str:
    """The output name of input blob ``name``: its path relative to the input ``prefix``
    with the output format's extension in place of its own (``a/b.csv`` → ``a/b.parquet``)."""
    base = f"{prefix}/" if prefix else ""
    relative = name[len(base):] if base and name.startswith(base) else name
    folder, slash, file = relative.rpartition("/")
    stem, dot, _ = file.rpartition(".")
    return f"{folder}{slash}{stem if dot and stem else file}.{OUTPUT_EXTENSIONS[output_format]}"


@dataclass(frozen=True)
class Piece:
    """Rows of one mini-batch's part that go to one output file: ``length`` bytes from
    ``offset`` (text formats), or ``length`` rows from row ``offset`` (Parquet)."""

    index: int
    offset: int
    length: int
    rows: int


@dataclass
class OutputFile:
    """One per-input-file output: its name (relative to the job's output), the input it
    was made from, and its pieces in order (mini-batch order, then row order)."""

    name: str
    source: str
    pieces: list[Piece] = field(default_factory=list)
    headers: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows the file gets."""
        return sum(p.rows for p in self.pieces)


def plan_per_input_file(
    parts: Iterable[tuple[int, str, Sequence[Segment], Sequence[str]]],
    prefix: str, output_format: str,
) -> list[OutputFile]:
    """The output files of ``(mini-batch index, header, segments, input names by
    position)`` of every mini-batch with a part, taken in mini-batch order.

    OutputError names two inputs that would get the same output name, or an input whose
    output name is one of the reports'.
    """
    files: dict[str, OutputFile] = {}
    for index, header, segments, names in parts:
        offset = 0
        for position, rows, size in segments:
            if not 0 <= position < len(names):
                raise OutputError(f"per_input_file: mini-batch {index} has rows of input "
                                  f"{position}, but only {len(names)} inputs")
            source = names[position]
            out = files.get(per_file_name(source, prefix, output_format))
            if out is None:
                out = files[per_file_name(source, prefix, output_format)] = OutputFile(
                    _check_name(per_file_name(source, prefix, output_format), source), source)
            elif out.source != source:
                raise OutputError(
                    f"per_input_file: inputs {out.source!r} and {source!r} would both be "
                    f"written as {out.name!r} (the output takes the input's name with the "
                    f"{output_format} extension); rename one of them, or use append_row")
            length = rows if output_format == "parquet" else size
            out.pieces.append(Piece(index, offset, length, rows))
            if header and (not out.headers or out.headers[-1][0] != index):
                out.headers.append((index, header))
            offset += length
    return list(files.values())


def _check_name(name: str, source: str) -> str:
    if name in REPORT_FILES or name.startswith("logs/"):
        raise OutputError(
            f"per_input_file: input {source!r} would be written as {name!r}, where batchfx "
            "writes its own reports; move the input into a folder or rename it")
    return name
