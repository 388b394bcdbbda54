"""Is an index exactly the chunks of the final documents? Stale, missing and duplicate chunks,
counted from what was read back from a store, never from counters (invariant I2 as a number)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredChunk:
    """One chunk as a store returned it."""

    doc_id: str
    text: str
    chunk_index: int | None = None
    """None where the store keeps no position (LangChain's vector store)."""
    source_version: int | None = None
    """None where the store keeps no version."""


@dataclass(frozen=True)
class ExpectedChunk:
    """One chunk the final document should have: its text and its position."""

    doc_id: str
    chunk_index: int
    text: str


@dataclass(frozen=True)
class IndexCheck:
    stale: int
    """Chunks that do not belong to the current doc: gone doc, text not in it, wrong position,
    or written from a version newer than the source holds."""
    missing: int
    """Expected chunks with no stored copy."""
    duplicates: int
    """Stored copies of a (doc, text) beyond the number of times the doc has that text."""
    stale_text: int = 0
    stale_position: int = 0
    stale_version: int = 0
    orphaned: int = 0
    """Chunks of docs the source no longer has (part of ``stale_text``)."""

    @property
    def exact(self) -> bool:
        return self.stale == self.missing == self.duplicates == 0


def check_index(
    stored: Iterable[StoredChunk],
    expected: Iterable[ExpectedChunk],
    versions: Mapping[str, int] | None = None,
    check_positions: bool = True,
) -> IndexCheck:
    """Compare per doc and per text, as multisets (a doc may repeat a text; each copy counts).

    Positions are compared among the copies that match: the stored positions of a text must be
    the expected positions of that text. ``versions`` (doc → current source version) flags
    chunks written from a version the source never reached; chunks that an edit did not touch
    keep the older version they were written at, which is correct and not flagged.
    """
    want: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for chunk in expected:
        want[chunk.doc_id][chunk.text].append(chunk.chunk_index)
    have: dict[str, dict[str, list[StoredChunk]]] = defaultdict(lambda: defaultdict(list))
    for copy in stored:
        have[copy.doc_id][copy.text].append(copy)

    missing = duplicates = stale_text = stale_position = stale_version = orphaned = 0
    for doc_id in set(want) | set(have):
        wanted, held = want.get(doc_id, {}), have.get(doc_id, {})
        if doc_id not in want:
            orphaned += sum(len(copies) for copies in held.values())
        for text in set(wanted) | set(held):
            positions, copies = sorted(wanted.get(text, [])), held.get(text, [])
            if not positions:
                stale_text += len(copies)
                continue
            missing += max(0, len(positions) - len(copies))
            duplicates += max(0, len(copies) - len(positions))
            if check_positions:
                stale_position += _misplaced(positions, copies)
            if versions is not None and doc_id in versions:
                stale_version += sum(
                    1 for c in copies if c.source_version is not None and c.source_version > versions[doc_id]
                )
    return IndexCheck(
        stale=stale_text + stale_position + stale_version,
        missing=missing,
        duplicates=duplicates,
        stale_text=stale_text,
        stale_position=stale_position,
        stale_version=stale_version,
        orphaned=orphaned,
    )


def _misplaced(positions: list[int], copies: list[StoredChunk]) -> int:
    """Stored copies whose position is not one of the text's expected positions (each expected
    position matches one copy at most)."""
    free = list(positions)
    misplaced = 0
    for chunk in copies:
        if chunk.chunk_index in free:
            free.remove(chunk.chunk_index)
        else:
            misplaced += 1
    # Extra copies are already duplicates; count a copy as misplaced only within the expected number.
    return max(0, misplaced - max(0, len(copies) - len(positions)))
