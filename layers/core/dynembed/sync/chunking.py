"""Structure-aware, content-defined chunking.

Why this shape: an edit to a document should re-embed only the chunks next to it (invariant I4
saves the rest). Greedy "fill up to N characters" chunkers fail that: one inserted sentence shifts
every later boundary. Here every place where a chunk *may* end (a "gap") gets a key that depends
only on local content: a structural rank (a heading beats a paragraph break beats a line break)
and a hash of the text that follows the gap. A span is cut at its strongest gap and the halves are
cut the same way until each piece is small enough; this is a treap over the gaps, so an edit only
changes the few pieces whose span touches the edited gaps, never the rest of the document.

Levels: blocks (headings, paragraphs, fenced code, lists, tables, admonitions), then lines of an
oversized block, then words of an oversized line, then hash-chosen character windows, and a fixed
hard cut as the very last resort, so no piece exceeds ``max_chars``.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from dynembed.core.errors import ConfigError
from dynembed.core.models import Chunk, ChunkerSpec

SPLIT_FACTOR = 1.7
"""A span larger than ``SPLIT_FACTOR * target_chars`` is cut. Cutting a span at a hash-chosen gap
leaves pieces of between ``min_chars`` and that bound, averaging close to ``target_chars``."""


@dataclass(frozen=True)
class _Limits:
    split_above: int
    max_chars: int
    min_chars: int


# ---- gap keys ------------------------------------------------------------------------------

_BLOCK, _LINE, _WORD, _WINDOW = 3, 2, 1, 0
"""Tiers of gaps: any gap between blocks beats any gap between lines of one block, and so on."""
_HASH_BITS = 64


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest())


_KEY_WINDOW = 128
"""The gap's hash reads up to this many characters after it, never past the end of the unit
one level up (a block's own text; for a line, its block; for a word, its line): repeated lines
or words rarely tie, and an edit to one block re-keys only the gaps in it and next to it."""


def _key(tier: int, rank: int, text: str, at: int, limit: int) -> int:
    """Tier, then rank, decide first; a hash of the text right after the gap breaks the ties."""
    return (((tier << 4) | rank) << _HASH_BITS) | _hash64(text[at : min(at + _KEY_WINDOW, limit)])


_HEADING_FLOOR = ((_BLOCK << 4) | 4) << _HASH_BITS
"""A gap this strong (before a heading) is cut even in a small span, when both sides are big enough."""


class _Units:
    """The document as a flat run of units: blocks, and the finer pieces of oversized blocks.

    ``bounds[k]`` is where unit k starts (one extra entry closes the last); ``keys[k]`` is the
    strength of the gap before unit k. A block only exposes its inner gaps when it alone is
    larger than ``max_chars``, so a code fence that fits is never cut.
    """

    def __init__(self, text: str, max_chars: int) -> None:
        self.text = text
        self.max_chars = max_chars
        self.bounds: list[int] = []
        self.keys: list[int] = []

    def add(self, start: int, end: int, key: int, finer: Callable[[int, int, int], None] | None) -> None:
        if end - start > self.max_chars and finer is not None:
            finer(start, end, key)
        else:
            self.bounds.append(start)
            self.keys.append(key)

    # ---- level 2: lines of an oversized block ----------------------------------------------
    def add_lines(self, start: int, end: int, key: int, in_fence: bool = False) -> None:
        """Blank lines stay with the line before them; a fence prefers blank lines, then dedents."""
        text = self.text
        starts = [s for s in _lines(text, start, end) if text[s : _line_end(text, s, end)].strip()]
        if not starts:
            self.add_hard(start, end, key)
            return
        base_indent = _indent(text[starts[0] : _line_end(text, starts[0], end)])
        starts[0] = start
        bounds = [*starts, end]
        for k in range(len(starts)):
            if k:
                line, previous = text[bounds[k] : bounds[k + 1]], text[bounds[k - 1] : bounds[k]]
                after_blank = previous.count("\n") > 1
                if in_fence:
                    rank = 2 if after_blank else 1 if _indent(line) <= base_indent else 0
                elif after_blank or _LIST_ITEM.match(line):
                    rank = 2
                elif line.lstrip().startswith("|") or previous.rstrip().endswith((".", "!", "?", ":")):
                    rank = 1
                else:
                    rank = 0
                key = _key(_LINE, rank, text, bounds[k], end)
            self.add(bounds[k], bounds[k + 1], key, self.add_words)

    # ---- level 3: words of an oversized line -----------------------------------------------
    def add_words(self, start: int, end: int, key: int) -> None:
        text = self.text
        starts = [m.start() for m in _WORD_RE.finditer(text, start, end)]
        if not starts:
            self.add_hard(start, end, key)
            return
        starts[0] = start
        bounds = [*starts, end]
        for k in range(len(starts)):
            if k:
                sentence_end = text[bounds[k - 1] : bounds[k]].rstrip().endswith((".", "!", "?", ";", ":"))
                key = _key(_WORD, 1 if sentence_end else 0, text, bounds[k], end)
            self.add(bounds[k], bounds[k + 1], key, self.add_windows)

    # ---- level 4: hash-chosen windows of an oversized word, then hard cuts -----------------
    def add_windows(self, start: int, end: int, key: int) -> None:
        """Content-defined cut points inside one huge token (base64, minified code...)."""
        text = self.text
        points = [
            p
            for p in range(start + _WINDOW_CHARS, end - 1)
            if _hash64(text[p - _WINDOW_CHARS : p]) & _WINDOW_MASK == 0
        ]
        bounds = [start, *points, end]
        for k in range(len(bounds) - 1):
            if k:
                key = _key(_WINDOW, 0, text, bounds[k] - _WINDOW_CHARS, end)
            self.add(bounds[k], bounds[k + 1], key, self.add_hard)

    def add_hard(self, start: int, end: int, key: int) -> None:
        """Last resort: fixed-size pieces, behind the weakest gaps there are."""
        for piece_start in range(start, end, self.max_chars):
            self.add(piece_start, min(piece_start + self.max_chars, end), key, None)
            key = 0


_WORD_RE = re.compile(r"\S+\s*")
_WINDOW_CHARS = 12
_WINDOW_MASK = 63  # a candidate cut every ~64 characters, chosen by content


def _lines(text: str, start: int, end: int) -> list[int]:
    """Start offsets of the lines of ``text[start:end]`` (absolute)."""
    starts = [start]
    pos = text.find("\n", start, end)
    while pos != -1 and pos + 1 < end:
        starts.append(pos + 1)
        pos = text.find("\n", pos + 1, end)
    return starts


def _line_end(text: str, start: int, end: int) -> int:
    newline = text.find("\n", start, end)
    return end if newline == -1 else newline


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


# ---- the treap cut -------------------------------------------------------------------------

Spans = list[tuple[int, int]]


def _cut(bounds: Sequence[int], keys: Sequence[int], limits: _Limits) -> Spans:
    """Cut the run of units into spans, strongest gap first.

    A span is cut at its strongest gap that leaves ``min_chars`` on each side when the span is
    larger than ``split_above`` or that gap is before a heading; a span over ``max_chars`` with
    no such gap is cut at its strongest gap anyway. Each decision reads only the span's own
    units, so spans that an edit does not touch are cut exactly as before.
    """
    spans: Spans = []
    stack = [(0, len(bounds) - 1)]
    while stack:
        first, stop = stack.pop()
        start, end = bounds[first], bounds[stop]
        size = end - start
        at: int | None = None
        if stop - first > 1:
            lo = max(first + 1, bisect_left(bounds, start + limits.min_chars, first + 1, stop))
            hi = min(stop - 1, bisect_right(bounds, end - limits.min_chars, first + 1, stop) - 1)
            if lo <= hi:
                best = max(keys[lo : hi + 1])
                if size > limits.split_above or best >= _HEADING_FLOOR:
                    at = keys.index(best, lo, hi + 1)
            if at is None and size > limits.max_chars:
                at = keys.index(max(keys[first + 1 : stop]), first + 1, stop)
        if at is None:
            spans.append((start, end))
        else:
            stack.append((at, stop))
            stack.append((first, at))
    return spans


# ---- level 1: blocks -----------------------------------------------------------------------


class _Kind(Enum):
    FRONT_MATTER = "front_matter"
    HEADING = "heading"
    BREAK = "break"
    FENCE = "fence"
    LABEL = "label"
    TEXT = "text"


@dataclass
class _Block:
    first_line: int
    kind: _Kind
    level: int = 0
    indented: bool = False


_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]|$)")
_FENCE_OPEN = re.compile(r"[ \t]*(`{3,}|~{3,})")
_FENCE_CLOSE = re.compile(r"[ \t]*(`{3,}|~{3,})[ \t]*$")
_UNDERLINE = re.compile(r"[ \t]*([=\-~^\"'`#*+:._])\1{2,}[ \t]*$")
_THEMATIC = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LABEL = re.compile(r"[ \t]*(?:!!!|\?\?\?\+?|===)(?:[ \t]|$)")
"""MkDocs admonitions and content tabs: a label line that introduces indented content."""
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S")
_SETEXT_LEVEL = {"=": 1, "#": 1, "*": 1, "-": 2}


def _parse_blocks(lines: list[str]) -> list[_Block]:
    """Group lines into structural blocks; blank lines stay with the block before them."""
    blocks: list[_Block] = []
    open_text = False  # the last block is a paragraph/list/table that the next line continues
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            open_text = False
            i += 1
            continue
        if i == 0 and line.strip() == "---":
            close = next((j for j in range(1, n) if lines[j].strip() in ("---", "...")), None)
            if close is not None:
                blocks.append(_Block(0, _Kind.FRONT_MATTER))
                i = close + 1
                continue
        fence = _FENCE_OPEN.match(line)
        if fence and not (fence.group(1)[0] == "`" and "`" in line[fence.end() :]):  # not inline code
            marker = fence.group(1)
            close = next(
                (
                    j
                    for j in range(i + 1, n)
                    if (m := _FENCE_CLOSE.match(lines[j]))
                    and m.group(1)[0] == marker[0]
                    and len(m.group(1)) >= len(marker)
                ),
                n - 1,
            )
            blocks.append(_Block(i, _Kind.FENCE, indented=line[0] in " \t"))
            open_text = False
            i = close + 1
            continue
        atx = _ATX.match(line)
        if atx:
            blocks.append(_Block(i, _Kind.HEADING, level=len(atx.group(1))))
            open_text = False
            i += 1
            continue
        underline = _UNDERLINE.match(line)
        if underline and open_text and blocks[-1].first_line == i - 1 and not _LIST_ITEM.match(lines[i - 1]):
            blocks[-1].kind = _Kind.HEADING
            blocks[-1].level = _SETEXT_LEVEL.get(underline.group(1), 3)
            open_text = False
            i += 1
            continue
        if (
            underline
            and not open_text
            and i + 2 < n
            and lines[i + 1].strip()
            and lines[i + 2].strip() == line.strip()
        ):  # reStructuredText over- and underlined title
            blocks.append(_Block(i, _Kind.HEADING, level=1))
            i += 3
            continue
        if not open_text and _THEMATIC.match(line):
            blocks.append(_Block(i, _Kind.BREAK))
            i += 1
            continue
        if _LABEL.match(line):
            blocks.append(_Block(i, _Kind.LABEL, indented=line[0] in " \t"))
            open_text = False
            i += 1
            continue
        if not open_text:
            blocks.append(_Block(i, _Kind.TEXT, indented=line[0] in " \t"))
            open_text = True
        i += 1
    return blocks


def _introduces_next(block: _Block, last_line: str) -> bool:
    """A heading, a label or a sentence ending in ':' belongs with what follows it."""
    if block.kind in (_Kind.HEADING, _Kind.LABEL):
        return True
    return block.kind is _Kind.TEXT and last_line.rstrip().endswith(":")


def _rank_before(block: _Block) -> int:
    if block.kind is _Kind.HEADING:
        return 10 - block.level  # h1 = 9 ... h6 = 4
    if block.kind is _Kind.BREAK:
        return 3
    return 1 if block.indented else 2


def _block_spans(text: str, limits: _Limits) -> Spans:
    line_starts = _lines(text, 0, len(text))
    line_ends = [*line_starts[1:], len(text)]
    lines = [text[s:e].rstrip("\n\r") for s, e in zip(line_starts, line_ends, strict=True)]
    blocks = _parse_blocks(lines)
    if not blocks:
        return []
    block_bounds = [0] + [line_starts[b.first_line] for b in blocks[1:]] + [len(text)]
    units = _Units(text, limits.max_chars)
    for k, block in enumerate(blocks):
        start, end = block_bounds[k], block_bounds[k + 1]
        key = 0
        if k:
            previous = text[block_bounds[k - 1] : start].rstrip()
            last_line = previous[previous.rfind("\n") + 1 :]
            rank = 0 if _introduces_next(blocks[k - 1], last_line) else _rank_before(block)
            key = _key(_BLOCK, rank, text, start, end)
        in_fence = block.kind is _Kind.FENCE

        def lines_of(s: int, e: int, key: int, in_fence: bool = in_fence) -> None:
            units.add_lines(s, e, key, in_fence)

        units.add(start, end, key, lines_of)
    return _cut([*units.bounds, len(text)], units.keys, limits)


# ---- public API ----------------------------------------------------------------------------

_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t\r]*\n)+")


def _clean(piece: str) -> str:
    """Drop surrounding blank lines and trailing space, keep the first line's indentation."""
    return _LEADING_BLANK_LINES.sub("", piece.rstrip())


def _limits_for(spec: ChunkerSpec, reserve: int = 0) -> _Limits:
    max_chars = max(1, spec.max_chars - reserve)
    split_above = max(1, min(max_chars, round(SPLIT_FACTOR * spec.target_chars)))
    return _Limits(split_above=split_above, max_chars=max_chars, min_chars=spec.min_chars)


def _title_prefix(title: str | None) -> str:
    title = (title or "").strip()
    return f"{title}\n\n" if title else ""


class StructuralChunker:
    """Cuts documents at structure, sized by ``spec``, with boundaries chosen by content."""

    def __init__(self, spec: ChunkerSpec = ChunkerSpec()) -> None:
        self.spec = spec

    def split(self, text: str) -> list[str]:
        """The document's pieces in order (no title); no piece is longer than ``max_chars``."""
        return self._split(text, _limits_for(self.spec))

    def chunk(self, parts: Sequence[tuple[str, str]]) -> list[Chunk]:
        """Chunks of one item's content parts: the first part is the title, the rest the body.

        The title prefixes every chunk, so the body is cut with ``max_chars`` less the prefix
        (at most half of it). A lone part is the body with no title; a title with no body
        becomes the only chunk, so the document can still be found.
        """
        if not parts:
            return []
        if len(parts) == 1:
            title, bodies = None, [parts[0][1]]
        else:
            title, bodies = parts[0][1], [text for _, text in parts[1:]]
        prefix = _title_prefix(title)
        limits = _limits_for(self.spec, reserve=min(len(prefix), self.spec.max_chars // 2))
        budget = self.spec.max_doc_chars
        pieces: list[str] = []
        for body in bodies:
            if budget is not None:
                body = body[: max(budget, 0)]
                budget -= len(body)
            pieces.extend(self._split(body, limits, truncate=False))
        if not pieces and prefix:
            return make_chunks(None, self._split(prefix, _limits_for(self.spec)))
        return make_chunks(title, pieces)

    def _split(self, text: str, limits: _Limits, truncate: bool = True) -> list[str]:
        if truncate and self.spec.max_doc_chars is not None:
            text = text[: self.spec.max_doc_chars]
        if not text.strip():
            return []
        pieces = (_clean(text[start:end]) for start, end in _block_spans(text, limits))
        return [piece for piece in pieces if piece]


def make_chunks(title: str | None, pieces: Sequence[str]) -> list[Chunk]:
    """Chunks keyed by their text, so a chunk that moves keeps its key (and its embedding)."""
    prefix = _title_prefix(title)
    seen: dict[str, int] = {}
    chunks = []
    for index, piece in enumerate(pieces):
        text = prefix + piece
        content_hash = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        repeat = seen.get(content_hash, 0)
        seen[content_hash] = repeat + 1
        key = content_hash[:16] + (f"-{repeat}" if repeat else "")
        chunks.append(Chunk(key=key, index=index, text=text, content_hash=content_hash, passage=piece))
    return chunks


_CHUNKERS: dict[str, Callable[[ChunkerSpec], StructuralChunker]] = {"structural": StructuralChunker}


def chunker_for(spec: ChunkerSpec) -> StructuralChunker:
    """The chunker a generation's spec names; an unknown name is a configuration error."""
    try:
        factory = _CHUNKERS[spec.name]
    except KeyError:
        raise ConfigError(
            f"chunker.name: unknown chunker {spec.name!r} (known: {', '.join(sorted(_CHUNKERS))})"
        ) from None
    return factory(spec)
