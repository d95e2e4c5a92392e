"""Pure partitioning: packing files into mini-batches, selecting them, manifest byte ranges."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from batchfx.core.packing import (
    ManifestEntry,
    ManifestLine,
    build_manifest_page,
    item_name,
    message_groups,
    pack_files,
    parse_manifest_line,
    select_files,
)
from batchfx.core.sizes import MiniBatchSize
from batchfx.storage.blobs import BlobRef


def refs(*sizes: int, prefix: str = "inputs") -> list[BlobRef]:
    return [BlobRef(f"{prefix}/f{i:03d}.txt", size, f"etag-{i}") for i, size in enumerate(sizes)]


def names(batches: list[list[BlobRef]]) -> list[list[str]]:
    return [[r.name.rsplit("/", 1)[-1] for r in batch] for batch in batches]


# --- pack_files by count -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("files", "count", "expected_lengths"),
    [
        (20, 10, [10, 10]),
        (25, 10, [10, 10, 5]),
        (3, 10, [3]),
        (5, 1, [1, 1, 1, 1, 1]),
        (0, 10, []),
    ],
)
def test_pack_by_count_makes_full_groups_and_a_remainder(
    files: int, count: int, expected_lengths: list[int]
) -> None:
    batches = list(pack_files(refs(*[1] * files), MiniBatchSize(count=count)))
    assert [len(b) for b in batches] == expected_lengths


def test_pack_by_count_keeps_listing_order() -> None:
    files = refs(*[1] * 7)
    batches = list(pack_files(files, MiniBatchSize(count=3)))
    assert [r for b in batches for r in b] == files


# --- pack_files by bytes -------------------------------------------------------------------

def test_pack_by_bytes_fills_each_mini_batch_up_to_the_limit() -> None:
    batches = list(pack_files(refs(40, 40, 20, 50, 50, 10), MiniBatchSize(bytes=100)))
    assert names(batches) == [
        ["f000.txt", "f001.txt", "f002.txt"],  # 100 bytes: exactly at the limit
        ["f003.txt", "f004.txt"],  # 100 bytes
        ["f005.txt"],
    ]


def test_pack_by_bytes_gives_a_file_larger_than_the_limit_its_own_mini_batch() -> None:
    batches = list(pack_files(refs(10, 10, 500, 10), MiniBatchSize(bytes=100)))
    assert names(batches) == [["f000.txt", "f001.txt"], ["f002.txt"], ["f003.txt"]]


def test_pack_by_bytes_never_yields_an_empty_mini_batch() -> None:
    batches = list(pack_files(refs(500, 500, 0, 500), MiniBatchSize(bytes=100)))
    assert all(batches)
    assert names(batches) == [["f000.txt"], ["f001.txt"], ["f002.txt"], ["f003.txt"]]


def test_pack_by_bytes_first_file_bigger_than_the_limit_is_not_preceded_by_an_empty_batch() -> None:
    batches = list(pack_files(refs(1000), MiniBatchSize(bytes=100)))
    assert names(batches) == [["f000.txt"]]


def test_pack_by_bytes_keeps_listing_order() -> None:
    files = refs(30, 90, 5, 200, 1, 1, 70, 40)
    batches = list(pack_files(files, MiniBatchSize(bytes=100)))
    assert [r for b in batches for r in b] == files


def test_pack_by_bytes_mini_batches_stay_within_the_limit_unless_one_file_is_bigger() -> None:
    files = refs(*[(i * 37) % 120 + 1 for i in range(200)])
    for batch in pack_files(files, MiniBatchSize(bytes=100)):
        assert len(batch) == 1 or sum(r.size for r in batch) <= 100


# --- streaming -----------------------------------------------------------------------------

def _endless_refs() -> Iterator[BlobRef]:
    for i in itertools.count():
        yield BlobRef(f"inputs/{i:09d}.bin", 1, "e")


def test_pack_files_takes_the_first_mini_batch_from_an_endless_listing() -> None:
    first = next(itertools.islice(pack_files(_endless_refs(), MiniBatchSize(count=10)), 1))
    assert [r.name for r in first] == [f"inputs/{i:09d}.bin" for i in range(10)]


def test_pack_files_by_bytes_takes_the_first_mini_batch_from_an_endless_listing() -> None:
    first = next(pack_files(_endless_refs(), MiniBatchSize(bytes=5)))
    assert len(first) == 5


def test_pack_files_pulls_only_what_the_first_mini_batches_need() -> None:
    pulled = 0

    def listing() -> Iterator[BlobRef]:
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield BlobRef(f"inputs/{i:06d}", 1, "e")

    batches = list(itertools.islice(pack_files(listing(), MiniBatchSize(count=10)), 2))
    assert [len(b) for b in batches] == [10, 10]
    # a mini-batch is known full only once the next file arrives
    assert pulled <= 21


def test_pack_files_over_100k_refs_accounts_for_every_file() -> None:
    gen = (BlobRef(f"inputs/{i:06d}", 1, "e") for i in range(100_000))
    total = sum(len(b) for b in pack_files(gen, MiniBatchSize(count=10)))
    assert total == 100_000


# --- select_files --------------------------------------------------------------------------

def _named(*names_: str) -> list[BlobRef]:
    return [BlobRef(n, 1, "e") for n in names_]


def test_select_files_excludes_a_sibling_whose_name_starts_with_the_prefix() -> None:
    listed = _named("inputs/a.txt", "inputs2/b.txt", "inputs-old/c.txt", "inputs/sub/d.txt")
    assert [r.name for r in select_files(listed, "inputs", None)] == [
        "inputs/a.txt",
        "inputs/sub/d.txt",
    ]


def test_select_files_skips_folder_markers() -> None:
    listed = _named("inputs/", "inputs/sub/", "inputs/sub/a.txt")
    assert [r.name for r in select_files(listed, "inputs", None)] == ["inputs/sub/a.txt"]


def test_select_files_matches_the_glob_on_the_name_relative_to_the_prefix() -> None:
    listed = _named("inputs/a.png", "inputs/b.txt", "inputs/sub/c.png", "inputs/png")
    assert [r.name for r in select_files(listed, "inputs", "*.png")] == [
        "inputs/a.png",
        "inputs/sub/c.png",  # fnmatch's '*' crosses '/'
    ]


def test_select_files_glob_is_anchored_at_the_prefix_not_the_container() -> None:
    listed = _named("data/inputs/a.png", "data/inputs/sub/b.png")
    selected = select_files(listed, "data/inputs", "a.*")
    assert [r.name for r in selected] == ["data/inputs/a.png"]


def test_select_files_glob_is_case_sensitive() -> None:
    listed = _named("inputs/a.PNG", "inputs/b.png")
    assert [r.name for r in select_files(listed, "inputs", "*.png")] == ["inputs/b.png"]


def test_select_files_with_an_empty_prefix_takes_the_whole_container() -> None:
    listed = _named("a.txt", "x/b.txt", "x/")
    assert [r.name for r in select_files(listed, "", None)] == ["a.txt", "x/b.txt"]


def test_select_files_is_lazy() -> None:
    endless = (BlobRef(f"inputs/{i}", 1, "e") for i in itertools.count())
    first = list(itertools.islice(select_files(endless, "inputs", None), 3))
    assert [r.name for r in first] == ["inputs/0", "inputs/1", "inputs/2"]


# --- manifest pages ------------------------------------------------------------------------

def test_each_manifest_range_parses_back_to_its_mini_batch() -> None:
    files = [BlobRef(f"in/ünï/{i}.txt", i * 11, f'"0x8D{i}"') for i in range(23)]
    batches = list(pack_files(files, MiniBatchSize(count=5)))
    page = build_manifest_page("data", "in", batches, first_index=40)
    assert len(page.entries) == len(batches)
    for entry, batch in zip(page.entries, batches, strict=True):
        line = parse_manifest_line(page.body[entry.offset : entry.offset + entry.length])
        assert line.index == entry.index
        assert line.container == "data"
        assert line.prefix == "in"
        assert line.items == batch
        assert entry.items == len(batch)


def test_manifest_indexes_continue_from_first_index() -> None:
    batches = [refs(1), refs(1, 2), refs(3)]
    page = build_manifest_page("c", "inputs", batches, first_index=7)
    assert [e.index for e in page.entries] == [7, 8, 9]


def test_manifest_ranges_tile_the_body_with_no_gap() -> None:
    batches = [refs(1, 2), refs(3), refs(4, 5, 6)]
    page = build_manifest_page("c", "inputs", batches, first_index=0)
    assert page.entries[0].offset == 0
    for before, after in itertools.pairwise(page.entries):
        assert after.offset == before.offset + before.length
    last = page.entries[-1]
    assert last.offset + last.length == len(page.body)


def test_manifest_ranges_count_bytes_not_characters() -> None:
    batches = [[BlobRef("inputs/é" * 10, 1, "e")], [BlobRef("inputs/日本.txt", 2, "e")]]
    page = build_manifest_page("c", "inputs", batches, first_index=0)
    second = page.entries[1]
    line = parse_manifest_line(page.body[second.offset : second.offset + second.length])
    assert line.items == batches[1]


@pytest.mark.parametrize(("mini_batches", "per_message"), [
    (1, 1), (63, 1), (127, 1), (128, 2), (500, 7), (640, 8), (5000, 8)])
def test_a_page_goes_out_in_messages_of_consecutive_mini_batches(mini_batches: int,
                                                                  per_message: int) -> None:
    entries = [ManifestEntry(i, 1, 10 * i, 10) for i in range(mini_batches)]
    groups = message_groups(entries)
    assert [e for g in groups for e in g] == entries  # all, in order, once
    assert max(len(g) for g in groups) == per_message
    assert all(len(g) == per_message for g in groups[:-1])


@pytest.mark.parametrize(("mini_batches", "places", "per_message"), [
    (50, 4, 3), (10, 4, 1), (500, 4, 8), (500, 64, 7), (100, 8, 3), (5000, 1, 8)])
def test_a_job_on_few_places_goes_out_in_fewer_messages(mini_batches: int, places: int,
                                                        per_message: int) -> None:
    # places: node_count x process_count_per_node x 2; four messages a place, at least
    # (64 at most), so every script process of the job still has work.
    entries = [ManifestEntry(i, 1, 10 * i, 10) for i in range(mini_batches)]
    groups = message_groups(entries, places)
    assert [e for g in groups for e in g] == entries
    assert max(len(g) for g in groups) == per_message
    assert len(groups) >= min(mini_batches, 4 * places, 64)


@pytest.mark.parametrize(("prefix", "name", "shown"), [
    ("uploads/inputs/abc/files", "uploads/inputs/abc/files/apac/x.csv", "apac/x.csv"),
    ("", "x.csv", "x.csv"),
    ("/home/u/data", "/home/u/data/d0/item-2.txt", "d0/item-2.txt"),
    ("in", "in/a.csv#bytes=0-100", "a.csv#bytes=0-100"),
])
def test_reports_name_an_item_by_its_path_under_the_input(prefix: str, name: str,
                                                          shown: str) -> None:
    line = ManifestLine(0, "data", prefix, [BlobRef(name, 1, "e")])
    assert item_name(line, name) == shown
