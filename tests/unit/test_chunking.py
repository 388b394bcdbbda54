"""The structural chunker: keys from text, structure kept, sizes bounded, edits stay local."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from bench import chunk_locality
from dynembed.core.errors import ConfigError
from dynembed.core.models import ChunkerSpec
from dynembed.sync.chunking import StructuralChunker, chunker_for, make_chunks

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SMALL = ChunkerSpec(target_chars=300, max_chars=600, min_chars=80)


def paragraph(seed: int, words: int = 30) -> str:
    """Distinct, deterministic prose: every paragraph differs from every other."""
    vocabulary = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "theta",
        "kappa",
        "lambda",
        "sigma",
        "omega",
    ]
    digest = hashlib.sha256(str(seed).encode()).digest() * 8
    return " ".join(vocabulary[b % len(vocabulary)] for b in digest[:words]) + f" (p{seed})."


def section(seed: int, level: int = 2, paragraphs: int = 2) -> str:
    body = "\n\n".join(paragraph(seed * 100 + i) for i in range(paragraphs))
    return f"{'#' * level} Section {seed}\n\n{body}"


def keys(chunker: StructuralChunker, text: str) -> list[str]:
    return [c.key for c in make_chunks(None, chunker.split(text))]


# ---- identity --------------------------------------------------------------------------------


def test_same_input_gives_the_same_chunks_every_time() -> None:
    # GIVEN a document with structure
    doc = "\n\n".join(section(i) for i in range(6))
    # WHEN two chunkers built from equal specs chunk it
    first = StructuralChunker(SMALL).chunk([("title", "Guide"), ("body", doc)])
    second = StructuralChunker(ChunkerSpec(**SMALL.model_dump())).chunk([("title", "Guide"), ("body", doc)])
    # THEN the chunks are identical, field by field
    assert first == second
    assert len(first) > 1


def test_key_hash_and_index_come_from_text_and_position() -> None:
    # GIVEN pieces and a title
    chunks = make_chunks("Guide", ["first piece", "second piece"])
    # THEN the text is title-prefixed, the hash is its sha256, the key its first 16 hex chars
    for index, (chunk, piece) in enumerate(zip(chunks, ["first piece", "second piece"], strict=True)):
        assert chunk.text == f"Guide\n\n{piece}"
        assert chunk.content_hash == hashlib.sha256(chunk.text.encode()).hexdigest()
        assert chunk.key == chunk.content_hash[:16]
        assert chunk.index == index


def test_moving_a_section_keeps_every_key() -> None:
    # GIVEN sections big enough to be chunks of their own
    sections = [section(i) for i in range(5)]
    chunker = StructuralChunker(SMALL)
    before = StructuralChunker(SMALL).chunk([("title", "T"), ("body", "\n\n".join(sections))])
    # WHEN the second section moves to the end
    moved = [sections[0], *sections[2:], sections[1]]
    after = chunker.chunk([("title", "T"), ("body", "\n\n".join(moved))])
    # THEN the same keys exist, only the positions changed
    assert {c.key for c in after} == {c.key for c in before}
    position_before = {c.key: c.index for c in before}
    position_after = {c.key: c.index for c in after}
    assert position_before != position_after


def test_repeated_text_gets_ordinals_in_order() -> None:
    # GIVEN the same piece three times
    chunks = make_chunks(None, ["same", "other", "same", "same"])
    base = hashlib.sha256(b"same").hexdigest()[:16]
    # THEN the first keeps the plain key and the repeats are numbered
    assert [c.key for c in chunks] == [
        base,
        hashlib.sha256(b"other").hexdigest()[:16],
        f"{base}-1",
        f"{base}-2",
    ]


def test_a_repeated_section_gets_an_ordinal_from_the_chunker() -> None:
    # GIVEN a document whose first and last sections are identical
    doc = "\n\n".join([section(1), section(2), section(1)])
    # WHEN it is chunked
    chunk_keys = [c.key for c in StructuralChunker(SMALL).chunk([("body", doc)])]
    # THEN every key is unique and the repeat carries "-1"
    assert len(set(chunk_keys)) == len(chunk_keys)
    assert any(key.endswith("-1") for key in chunk_keys)


# ---- parts, titles, empty input ----------------------------------------------------------------


def test_title_prefixes_every_chunk_and_bodies_are_split_separately() -> None:
    # GIVEN a title and two body attributes
    parts = [
        ("title", "Install guide"),
        ("summary", paragraph(1)),
        ("body", section(2) + "\n\n" + section(3)),
    ]
    # WHEN chunked
    chunks = StructuralChunker(SMALL).chunk(parts)
    # THEN every chunk starts with the title, and no chunk mixes the summary with the body
    assert all(c.text.startswith("Install guide\n\n") for c in chunks)
    assert chunks[0].text == f"Install guide\n\n{paragraph(1)}"
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_a_single_part_is_the_body_without_title() -> None:
    chunks = StructuralChunker(SMALL).chunk([("body", "Just a body.")])
    assert [c.text for c in chunks] == ["Just a body."]


def test_a_title_without_body_still_yields_one_chunk() -> None:
    # GIVEN a title and a body that is only whitespace
    chunks = StructuralChunker(SMALL).chunk([("title", "Lonely title"), ("body", "  \n\n ")])
    # THEN the doc can still be found by its title
    assert [c.text for c in chunks] == ["Lonely title"]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n"])
def test_empty_documents_yield_no_chunks(text: str) -> None:
    chunker = StructuralChunker()
    assert chunker.split(text) == []
    assert chunker.chunk([("body", text)]) == []
    assert chunker.chunk([]) == []


# ---- structure ---------------------------------------------------------------------------------


def test_headings_start_chunks() -> None:
    # GIVEN sections at several levels, each larger than min_chars
    doc = "\n\n".join([section(1, 1), section(2, 2), section(3, 3), section(4, 2)])
    # WHEN split
    pieces = StructuralChunker(SMALL).split(doc)
    # THEN each section is a chunk that starts at its heading
    assert [p.splitlines()[0] for p in pieces] == [
        "# Section 1",
        "## Section 2",
        "### Section 3",
        "## Section 4",
    ]


def test_setext_and_rst_headings_are_headings() -> None:
    # GIVEN reStructuredText with an over/underlined title and underlined sections
    doc = (
        f"=====\nTitle\n=====\n\n{paragraph(1)}\n\n"
        f"Section one\n-----------\n\n{paragraph(2)}\n\n"
        f"Section two\n-----------\n\n{paragraph(3)}\n"
    )
    # WHEN split
    pieces = StructuralChunker(SMALL).split(doc)
    # THEN every section starts a chunk
    assert [p.splitlines()[0] for p in pieces] == ["=====", "Section one", "Section two"]


def test_small_sections_merge_instead_of_becoming_tiny_chunks() -> None:
    # GIVEN headings each followed by one short sentence (far below min_chars)
    doc = "\n\n".join(f"### Option {i}\n\nShort note {i}." for i in range(12))
    # WHEN split
    pieces = StructuralChunker(SMALL).split(doc)
    # THEN sections are merged (each chunk starts at a heading) and no chunk is tiny
    assert 1 < len(pieces) < 12
    assert all(p.startswith("### Option") for p in pieces)
    assert all(len(p) >= SMALL.min_chars for p in pieces[:-1])


def test_a_code_fence_that_fits_is_never_split() -> None:
    # GIVEN a fence larger than target but within max, with blank lines inside
    code = "\n".join(f"value_{i} = compute({i})" + ("\n" if i % 4 == 0 else "") for i in range(14))
    fence = f"```python\n{code}\n```"
    assert SMALL.target_chars < len(fence) <= SMALL.max_chars
    doc = "\n\n".join([paragraph(1), paragraph(2), fence, paragraph(3), paragraph(4)])
    # WHEN split
    pieces = StructuralChunker(SMALL).split(doc)
    # THEN the fence sits whole inside one piece
    assert sum(fence in p for p in pieces) == 1


def test_an_oversized_fence_is_cut_between_lines() -> None:
    # GIVEN a fence far over max_chars
    lines = [f"    result_{i} = transform(record_{i})" for i in range(60)]
    fence = "```python\n" + "\n".join(lines) + "\n```"
    assert len(fence) > 3 * SMALL.max_chars
    # WHEN split
    pieces = StructuralChunker(SMALL).split(fence)
    # THEN it is cut only at line ends, every piece within max
    assert len(pieces) > 1
    assert all(len(p) <= SMALL.max_chars for p in pieces)
    for piece in pieces:
        for line in piece.splitlines():
            assert line.strip() in ("```python", "```") or line.strip() in (x.strip() for x in lines)


def test_max_chars_holds_for_every_kind_of_oversized_text() -> None:
    # GIVEN texts with no structure to cut at: one long line, one huge token, a long list
    long_line = " ".join(paragraph(i) for i in range(40))
    huge_token = hashlib.sha256(b"x").hexdigest() * 200
    long_list = "\n".join(f"- item {i}: {paragraph(i, 8)}" for i in range(80))
    chunker = StructuralChunker(SMALL)
    for text in (long_line, huge_token, long_list, "a" * 5000):
        # WHEN split
        pieces = chunker.split(text)
        # THEN no piece exceeds max_chars and nothing is lost
        assert all(len(p) <= SMALL.max_chars for p in pieces)
        assert "".join("".join(pieces).split()) == "".join(text.split())


def test_the_title_counts_toward_max_chars() -> None:
    # GIVEN a long body and a title
    body = "\n\n".join(paragraph(i, 60) for i in range(20))
    chunks = StructuralChunker(SMALL).chunk([("title", "A fairly long title for a document"), ("body", body)])
    # THEN the embedded text, title included, fits
    assert all(len(c.text) <= SMALL.max_chars for c in chunks)


# ---- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"target_chars": 800}, {"max_chars": 1500}, {"min_chars": 200}, {"max_doc_chars": 10_000}],
)
def test_every_size_parameter_changes_the_version(change: dict[str, int]) -> None:
    assert ChunkerSpec.model_validate(change).version != ChunkerSpec().version


def test_size_parameters_change_the_chunks() -> None:
    doc = "\n\n".join(paragraph(i, 40) for i in range(30))
    small = StructuralChunker(SMALL).split(doc)
    default = StructuralChunker().split(doc)
    assert len(small) > len(default)


def test_max_doc_chars_truncates_the_document() -> None:
    # GIVEN a spec that keeps only the first 500 characters
    spec = ChunkerSpec(target_chars=200, max_chars=400, min_chars=60, max_doc_chars=500)
    doc = "\n\n".join(paragraph(i) for i in range(20))
    # WHEN split and chunked with two body parts
    pieces = StructuralChunker(spec).split(doc)
    chunks = StructuralChunker(spec).chunk([("title", "T"), ("a", doc), ("b", paragraph(99))])
    # THEN only the start survives, across all body parts together
    assert "".join(pieces) == "".join(p for p in pieces)  # pieces are plain strings
    assert sum(len(p) for p in pieces) <= 500
    assert "(p0)" in pieces[0] and "(p19)" not in "".join(pieces)
    assert sum(len(c.text) - len("T\n\n") for c in chunks) <= 500
    assert not any("(p99)" in c.text for c in chunks)


def test_chunker_for_knows_structural_and_rejects_unknown_names() -> None:
    chunker = chunker_for(SMALL)
    assert isinstance(chunker, StructuralChunker)
    assert chunker.spec == SMALL
    with pytest.raises(ConfigError, match="fixed-window"):
        chunker_for(ChunkerSpec(name="fixed-window"))


# ---- locality ----------------------------------------------------------------------------------


def test_an_edit_in_one_section_leaves_other_sections_alone() -> None:
    # GIVEN a long document of many paragraphs under few headings
    paragraphs = [paragraph(i, 25 + i % 30) for i in range(60)]
    doc = "\n\n".join(["# Guide", *paragraphs[:30], "## Details", *paragraphs[30:]])
    chunker = StructuralChunker(SMALL)
    before = keys(chunker, doc)
    # WHEN one sentence is added to one paragraph in the middle
    after = keys(chunker, doc.replace(paragraphs[40], paragraphs[40] + " One more sentence."))
    # THEN at most the chunks around it change
    assert len(set(after) - set(before)) <= 2
    assert len(set(before) - set(after)) <= 2


# ---- the benchmark script ----------------------------------------------------------------------


def write_stream(path: Path, events: list[dict[str, object]]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        for seq, event in enumerate(events):
            stream.write(json.dumps({"seq": seq, "op": "upsert", "title": "Doc", **event}) + "\n")


def test_benchmark_counts_changed_and_removed_chunks_per_edit(tmp_path: Path) -> None:
    # GIVEN a stream: a snapshot, one single-region edit, one edit in two places, another doc
    sections = [section(i) for i in range(6)]
    v1 = "\n\n".join(sections)
    v2 = v1.replace(sections[2], sections[2] + "\n\nA new closing paragraph for section two.")
    v3 = v2.replace(sections[0], section(40)).replace(sections[5], section(50))
    stream = tmp_path / "edits.jsonl.gz"
    write_stream(
        stream,
        [
            {"phase": "snapshot", "doc_id": "a", "body": v1},
            {"phase": "edit", "doc_id": "a", "body": v2},
            {"phase": "edit", "doc_id": "b", "body": "A new doc."},
            {"phase": "edit", "doc_id": "a", "body": v3},
        ],
    )
    # WHEN measured with small chunks
    result = chunk_locality.measure(stream, chunk_locality.structural_chunks(SMALL))
    # THEN only modifications count: one single-region edit (1 chunk) and one two-region edit
    assert result["all_edits"]["changed"]["edits"] == 2
    assert result["single_region_edits"]["changed"]["edits"] == 1
    assert result["single_region_edits"]["changed"]["histogram"]["1"] == 1
    assert result["all_edits"]["changed"]["max"] == 2
    assert result["all_edits"]["removed"]["max"] == 2


def test_benchmark_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stream = tmp_path / "edits.jsonl.gz"
    write_stream(
        stream,
        [
            {"phase": "snapshot", "doc_id": "a", "body": section(1)},
            {"phase": "edit", "doc_id": "a", "body": section(1) + "\n\nMore."},
        ],
    )
    assert chunk_locality.main([str(stream), "--target", "300", "--max", "600", "--min", "80", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["all_edits"]["changed"]["edits"] == 1
    assert report["chunker_version"] == SMALL.version


def test_percentiles_are_nearest_rank() -> None:
    values = [0, 1, 1, 1, 2, 2, 3, 9, 10, 40]
    dist = chunk_locality.distribution(values)
    assert (dist["p50"], dist["p90"], dist["p99"]) == (2, 10, 40)
    assert dist["histogram"] == {"0": 1, "1": 3, "2": 2, "3": 1, "4": 0, "5+": 3}


def test_shipped_edit_stream_meets_the_locality_goal() -> None:
    # GIVEN the real documentation edit stream shipped with the repo
    stream = REPO / "data" / "editstream" / "editstream.jsonl.gz"
    # WHEN replayed with the production default chunker
    result = chunk_locality.measure(stream, chunk_locality.structural_chunks(ChunkerSpec()))
    # THEN single-region edits re-embed about one chunk, at a useful chunk size
    single = result["single_region_edits"]["changed"]
    assert single["edits"] > 100
    assert single["p50"] <= 1
    assert single["p90"] <= 2
    assert 600 <= result["mean_chunk_chars"] <= 1500
