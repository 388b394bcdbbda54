"""The backfill's own cost per item, outside embedding, from 10 thousand to a million items.

    .venv/bin/python bench/backfill_scale.py [--sizes 10000,100000,1000000] [--segments 4] [--json OUT]

Runs the real backfill step (``dynembed.rebuild.steps.backfill_pages``: scan a page, reconcile
it into the candidate — chunking, ledger, index writes — record progress; ``pages_per_task``
pages per task, tasks until every segment is done) over a synthetic table that is never stored
(``tests.fakes.SyntheticSource``: a page costs only its own items), with the in-memory ledger
and registry of the unit tests, an index that counts what it is sent, and an embedder that
returns a constant 2-d vector (no real embedding). The figure is CPU time per item (this process's:
wall time on a shared machine measures the neighbours) with the embedder's and the synthetic
table's own time taken out: it must stay flat as the table grows (nothing per page may grow
with what was done before).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes

from dynembed.core.config import Settings
from dynembed.core.models import ChunkDocument, ChunkerSpec, Generation, ModelSpec
from dynembed.core.ports import SearchHit, WriteReport
from dynembed.core.schema import SourceSchema
from dynembed.rebuild import steps
from dynembed.rebuild.generations import create, new_generation
from dynembed.rebuild.inputs import RebuildInput
from dynembed.wiring import Services
from tests.fakes import (
    InMemoryLedger,
    InMemoryProgressStore,
    InMemoryRegistry,
    SyntheticSource,
    services_over,
)

SPEC = ModelSpec(provider="bench", name="constant-2", dimension=2)


class ConstantEmbedder:
    """A vector per text at no cost; it times itself so its share can be taken out."""

    spec = SPEC

    def __init__(self) -> None:
        self.texts = 0
        self.seconds = 0.0

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        started = time.process_time()
        vectors = [[1.0, 0.0] for _ in texts]
        self.texts += len(texts)
        self.seconds += time.process_time() - started
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return [1.0, 0.0]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]


class CountingIndex:
    """The ChunkIndex port, keeping nothing but counts (a million docs' chunks would not fit)."""

    def __init__(self) -> None:
        self.written = 0

    def ensure_index(self, generation: Generation) -> None: ...

    def delete_index(self, index: str) -> None: ...

    def write_chunks(
        self, index: str, docs: Sequence[ChunkDocument], versions: Sequence[int] | None = None
    ) -> WriteReport:
        self.written += len(docs)
        return WriteReport(written=len(docs))

    def delete_chunks(self, index: str, ids_versions: Sequence[tuple[str, int]]) -> WriteReport:
        return WriteReport(deleted=len(ids_versions))

    def get_chunks(
        self, index: str, ids: Sequence[str], exclude: Sequence[str] = ()
    ) -> dict[str, dict[str, Any]]:
        return {}

    def knn_search(
        self, index: str, vector: Sequence[float], k: int, filter_query: Mapping[str, Any] | None
    ) -> list[SearchHit]:
        return []

    def iter_chunks(self, index: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(())

    def refresh(self, index: str) -> None: ...

    def alias_target(self, alias: str) -> str | None:
        return None

    def swap_alias(self, alias: str, new_index: str, old_index: str | None) -> None: ...


class NoCache:
    def get_many(self, model_id: str, content_hashes: Sequence[str]) -> dict[str, list[float]]:
        return {}

    def put_many(self, model_id: str, vectors: Mapping[str, Sequence[float]]) -> None: ...


class TimedSource(SyntheticSource):
    """The synthetic table, timing its own page making (not the backfill's cost: on AWS a page
    is a DynamoDB Scan, measured apart)."""

    seconds: float = 0.0

    def scan_segment(
        self, segment: int, total_segments: int, start_key: dict[str, Any] | None, limit: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        started = time.process_time()
        try:
            return super().scan_segment(segment, total_segments, start_key, limit)
        finally:
            self.seconds += time.process_time() - started


def bench_services(items: int) -> Services:
    """The production wiring with a synthetic table, an index that counts, no cache and a
    constant embedder: what is left is the backfill's own work."""
    registry = InMemoryRegistry()
    return services_over(
        Settings(),
        SourceSchema(content_attributes=("title", "body"), access_attributes=("acl",)),
        embedders=[ConstantEmbedder()],
        source=TimedSource(items),
        ledger=InMemoryLedger(),
        registry=registry,
        index=CountingIndex(),
        cache=NoCache(),
        progress=InMemoryProgressStore(registry),
    )


def run(items: int, segments: int, page_size: int, pages_per_task: int) -> dict[str, Any]:
    svc = bench_services(items)
    embedder, source, index = svc._embedders[SPEC.model_id], svc.source, svc.index
    assert isinstance(embedder, ConstantEmbedder) and isinstance(source, TimedSource)
    assert isinstance(index, CountingIndex)
    generation = new_generation(SPEC, ChunkerSpec(), svc.settings.index_prefix, generation_id="g-bench")
    create(svc.registry, svc.index, generation)
    config = RebuildInput(
        model="hash-256",
        generation_id=generation.id,
        backfill_segments=segments,
        page_size=page_size,
        pages_per_task=pages_per_task,
    )
    svc.registry.update(generation.id, backfill=steps.BackfillProgress.fresh(segments, page_size).record())
    tasks = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    pending = list(range(segments))
    while pending:  # the Map's children, one task at a time (each would be its own Lambda call)
        for segment in list(pending):
            result = steps.backfill_pages(svc, config, segment, time_budget_s=900.0)
            tasks += 1
            if result["done"]:
                pending.remove(segment)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    outside = cpu - embedder.seconds - source.seconds
    progress = steps.BackfillProgress.from_record(svc.registry.get(generation.id).backfill)
    assert progress is not None and progress.done and progress.total("docs") == items
    return {
        "items": items,
        "tasks": tasks,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "texts": embedder.texts,
        "chunks_written": index.written,
        "us_per_item": round(outside / items * 1e6, 1),
        "us_per_item_embedding": round(embedder.seconds / items * 1e6, 2),
        "us_per_item_source": round(source.seconds / items * 1e6, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--pages-per-task", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for items in (int(s) for s in args.sizes.split(",")):
        row = run(items, args.segments, args.page_size, args.pages_per_task)
        rows.append(row)
        print(
            f"{row['items']:>9,} items: {row['us_per_item']:7.1f} µs/item outside embedding "
            f"(CPU {row['cpu_seconds']:.1f} s, wall {row['seconds']:.1f} s, {row['tasks']:,} tasks, "
            f"{row['chunks_written']:,} chunks)",
            flush=True,
        )
    spread = max(r["us_per_item"] for r in rows) / min(r["us_per_item"] for r in rows)
    print(f"largest / smallest per-item time: {spread:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "spread": round(spread, 3)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
