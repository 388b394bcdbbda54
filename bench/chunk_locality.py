"""Edit locality of the chunker: how many chunks one real edit makes us embed again.

Replays an edit stream (jsonl.gz; format in data/editstream/README.md). For every modification
of a doc, both versions are chunked as production does (title part = the event's ``title``,
body = ``body``) and compared by chunk key: "changed" = keys in the new version absent from the
old (chunks to embed), "removed" = keys gone. Edits whose line diff is one contiguous region are
reported apart ("single-region"): there a local chunker should change about one chunk.

    python bench/chunk_locality.py data/editstream/editstream.jsonl.gz [--target N --max N --min N]
        [--splitter structural|langchain] [--json]

Percentiles are nearest-rank (the value of an actual edit, never an interpolation).
"""

from __future__ import annotations

import argparse
import difflib
import gzip
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dynembed.core.models import Chunk, ChunkerSpec
from dynembed.sync.chunking import chunker_for, make_chunks

ChunkDoc = Callable[[str, str], list[Chunk]]
"""(title, body) -> the doc's chunks, as the sync flow would store them."""


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                yield json.loads(line)


def structural_chunks(spec: ChunkerSpec) -> ChunkDoc:
    chunker = chunker_for(spec)
    return lambda title, body: chunker.chunk([("title", title), ("body", body)])


def langchain_chunks(spec: ChunkerSpec) -> ChunkDoc:
    """Baseline: LangChain's Markdown splitter (greedy merge of separator-split pieces)."""
    from langchain_text_splitters import MarkdownTextSplitter

    splitter = MarkdownTextSplitter(chunk_size=spec.target_chars, chunk_overlap=0)
    return lambda title, body: make_chunks(title, splitter.split_text(body))


def is_single_region(old: str, new: str) -> bool:
    """Exactly one non-equal opcode in a line diff: the edit touches one contiguous block.

    The common head and tail are trimmed first (what difflib would match anyway), which keeps
    the quadratic matcher on the changed middle only.
    """
    old_lines, new_lines = old.splitlines(), new.splitlines()
    head = 0
    while head < min(len(old_lines), len(new_lines)) and old_lines[head] == new_lines[head]:
        head += 1
    tail = 0
    while (
        tail < min(len(old_lines), len(new_lines)) - head
        and old_lines[len(old_lines) - 1 - tail] == new_lines[len(new_lines) - 1 - tail]
    ):
        tail += 1
    old_middle = old_lines[head : len(old_lines) - tail]
    new_middle = new_lines[head : len(new_lines) - tail]
    matcher = difflib.SequenceMatcher(None, old_middle, new_middle, autojunk=False)
    return sum(1 for op in matcher.get_opcodes() if op[0] != "equal") == 1


def nearest_rank(values: Sequence[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def distribution(values: Sequence[int]) -> dict[str, Any]:
    if not values:
        return {"edits": 0}
    histogram = {str(n): sum(1 for v in values if v == n) for n in range(5)}
    histogram["5+"] = sum(1 for v in values if v >= 5)
    return {
        "edits": len(values),
        "histogram": histogram,
        "p50": nearest_rank(values, 0.50),
        "p90": nearest_rank(values, 0.90),
        "p99": nearest_rank(values, 0.99),
        "mean": round(sum(values) / len(values), 3),
        "max": max(values),
    }


def measure(path: Path, chunk_doc: ChunkDoc) -> dict[str, Any]:
    previous: dict[str, tuple[str, list[str]]] = {}
    changed_all: list[int] = []
    removed_all: list[int] = []
    changed_single: list[int] = []
    removed_single: list[int] = []
    sizes: list[int] = []
    for event in read_events(path):
        doc_id = event["doc_id"]
        if event.get("op") == "delete":
            previous.pop(doc_id, None)
            continue
        body, title = event.get("body") or "", event.get("title") or ""
        chunks = chunk_doc(title, body)
        keys = [c.key for c in chunks]
        sizes.extend(len(c.text) for c in chunks)
        before = previous.get(doc_id)
        previous[doc_id] = (body, keys)
        if before is None or event.get("phase") == "snapshot":
            continue
        old_body, old_keys = before
        changed = len(set(keys) - set(old_keys))
        removed = len(set(old_keys) - set(keys))
        changed_all.append(changed)
        removed_all.append(removed)
        if is_single_region(old_body, body):
            changed_single.append(changed)
            removed_single.append(removed)
    return {
        "all_edits": {"changed": distribution(changed_all), "removed": distribution(removed_all)},
        "single_region_edits": {
            "changed": distribution(changed_single),
            "removed": distribution(removed_single),
        },
        "chunks_seen": len(sizes),
        "mean_chunk_chars": round(sum(sizes) / len(sizes), 1) if sizes else 0.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", type=Path, help="edit stream (.jsonl or .jsonl.gz)")
    defaults = ChunkerSpec()
    parser.add_argument("--target", type=int, default=defaults.target_chars)
    parser.add_argument("--max", type=int, default=defaults.max_chars)
    parser.add_argument("--min", type=int, default=defaults.min_chars)
    parser.add_argument("--splitter", choices=("structural", "langchain"), default="structural")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)

    spec = ChunkerSpec(target_chars=args.target, max_chars=args.max, min_chars=args.min)
    chunk_doc = structural_chunks(spec) if args.splitter == "structural" else langchain_chunks(spec)
    started = time.perf_counter()
    result = measure(args.path, chunk_doc)
    result.update(
        splitter=args.splitter,
        chunker_version=spec.version if args.splitter == "structural" else None,
        target_chars=spec.target_chars,
        max_chars=spec.max_chars,
        min_chars=spec.min_chars,
        title="event title field, prefixed to every chunk",
        seconds=round(time.perf_counter() - started, 1),
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    return 0


def render(result: dict[str, Any]) -> str:
    lines = [
        f"splitter {result['splitter']} ({result['chunker_version']}): target {result['target_chars']}, "
        f"max {result['max_chars']}, min {result['min_chars']}; title: {result['title']}",
        f"chunks seen: {result['chunks_seen']}, mean chunk size: {result['mean_chunk_chars']} chars",
    ]
    for group in ("all_edits", "single_region_edits"):
        for what in ("changed", "removed"):
            dist = result[group][what]
            if not dist["edits"]:
                lines.append(f"{group:<20} {what:<8} no edits")
                continue
            hist = " ".join(f"{k}:{v}" for k, v in dist["histogram"].items())
            lines.append(
                f"{group:<20} {what:<8} edits {dist['edits']:>4}  [{hist}]  p50 {dist['p50']} "
                f"p90 {dist['p90']} p99 {dist['p99']} mean {dist['mean']} max {dist['max']}"
            )
    lines.append(f"took {result['seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
