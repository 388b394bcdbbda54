"""Quality, memory and latency of each retrieval and vector precision on a golden set, in one run.

The shipped QA set (data/python-faq: 1,500 docs, 177 judged queries) is chunked with the
default chunker, embedded once by a real model, and written to a fresh osmem-server through
the real adapter (``OpenSearchChunkIndex``, exact mode). Then every setting answers every judged
query through ``OpenSearchChunkIndex.search``, exactly as a generation with that setting would
be searched locally (the exact scorer quantizes as the engine's index would; hybrid fuses BM25
and k-NN with the pipeline's formula), and is scored by the gate's own metrics:

- nDCG@10, Recall@10, MRR@10, and per-query wins / losses on nDCG against vector float32;
- memory per vector and estimated index memory (``index.sizing``: the k-NN plugin's HNSW formula,
  one copy, m = 16);
- search latency p50 / p95 over the queries (the index search; query embedding is timed apart);
- the score threshold the Evaluate step would calibrate (F1 of "top hit is relevant").

Vectors are cached in ``--vector-cache`` (by model and chunk text), so only the first run pays
for the embedding (minilm: ~3,100 chunks, minutes on 2 busy cores).

    python bench/retrieval_settings.py [--model minilm|static-64] [--k 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from dynembed.core.models import (
    ChunkDocument,
    ChunkerSpec,
    Generation,
    RetrievalSpec,
    VectorSpec,
)
from dynembed.core.ports import IndexSearch
from dynembed.core.schema import SourceSchema
from dynembed.embedders.catalog import get_embedder, spec_for
from dynembed.index import quantize
from dynembed.index.filters import access_filter
from dynembed.index.opensearch import OpenSearchChunkIndex, build_client
from dynembed.index.scoring import prepare_vectors
from dynembed.index.sizing import size_index
from dynembed.quality.evaluation import (
    ThresholdPolicy,
    calibrate_threshold,
    compare,
    evaluate_run,
    load_golden_set,
    top_hits,
)
from dynembed.sync.chunking import chunker_for
from dynembed_ops import paths
from dynembed_ops.local.osmem import start_osmem

SCHEMA = SourceSchema(content_attributes=("title", "body"))
SETTINGS: list[tuple[str, RetrievalSpec, VectorSpec]] = [
    ("vector float32", RetrievalSpec(), VectorSpec()),
    ("vector float16", RetrievalSpec(), VectorSpec(precision="float16")),
    ("vector byte", RetrievalSpec(), VectorSpec(precision="byte")),
    ("vector binary", RetrievalSpec(), VectorSpec(precision="binary")),
    ("vector binary rescore x3", RetrievalSpec(), VectorSpec(precision="binary", oversample=3.0)),
    ("vector binary on disk", RetrievalSpec(), VectorSpec(precision="binary", on_disk=True)),
    ("hybrid linear 0.3", RetrievalSpec(mode="hybrid", lexical_weight=0.3), VectorSpec()),
    ("hybrid linear 0.5", RetrievalSpec(mode="hybrid", lexical_weight=0.5), VectorSpec()),
    ("hybrid rrf", RetrievalSpec(mode="hybrid", fusion="rrf", lexical_weight=0.5), VectorSpec()),
    (
        "hybrid linear 0.3 + binary x3",
        RetrievalSpec(mode="hybrid"),
        VectorSpec(precision="binary", oversample=3.0),
    ),
]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def chunk_corpus(corpus: Path) -> list[tuple[str, Any]]:
    """(doc id, chunk) for every chunk of every doc, with the default chunker."""
    chunker = chunker_for(ChunkerSpec())
    chunks = []
    for line in corpus.read_text(encoding="utf-8").splitlines():
        if line.strip():
            doc = json.loads(line)
            chunks += [(doc["doc_id"], c) for c in chunker.chunk(SCHEMA.content_of(doc))]
    return chunks


def embed_chunks(model: str, chunks: list[tuple[str, Any]], cache_dir: Path) -> tuple[np.ndarray, float]:
    """Vectors of every chunk text, from the file cache where known; seconds spent embedding."""
    spec = spec_for(model)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_file = cache_dir / (re.sub(r"[^A-Za-z0-9]+", "_", spec.model_id) + ".npz")
    known: dict[str, np.ndarray] = {}
    if cache_file.exists():
        with np.load(cache_file) as stored:
            known = {h: stored[h] for h in stored.files}
    texts = {c.content_hash: c.text for _, c in chunks}
    missing = [h for h in texts if h not in known]
    started = time.perf_counter()
    if missing:
        embedder = get_embedder(model)
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            for h, vector in zip(batch, embedder.embed_documents([texts[h] for h in batch]), strict=True):
                known[h] = np.asarray(vector, dtype=np.float32)
            print(f"  embedded {min(start + 64, len(missing))}/{len(missing)} chunks", file=sys.stderr)
            if (start // 64) % 8 == 7:  # an interrupted first run keeps what it embedded
                np.savez(cache_file, **known)
        np.savez(cache_file, **known)
    spent = time.perf_counter() - started
    return np.stack([known[c.content_hash] for _, c in chunks]), spent


def run(args: argparse.Namespace) -> dict[str, Any]:
    golden = load_golden_set(args.queries, args.qrels)
    chunks = chunk_corpus(args.corpus)
    vectors, embed_s = embed_chunks(args.model, chunks, args.vector_cache)
    spec = spec_for(args.model)
    embedder = get_embedder(args.model)
    generation = Generation(
        id="bench",
        index_name="bench-faq",
        model=spec,
        chunker=ChunkerSpec(),
        retrieval=RetrievalSpec(mode="hybrid"),  # one index: its text analysed for BM25
    )
    now = time.time()
    docs = [
        ChunkDocument(
            doc_id=doc_id,
            chunk_key=chunk.key,
            chunk_index=chunk.index,
            text=chunk.passage or chunk.text,
            content_hash=chunk.content_hash,
            embedding=vector.tolist(),
            source_version=1,
            indexed_at=now,
            model_id=spec.model_id,
            chunker_version=generation.chunker.version,
            schema_version=1,
            generation=generation.id,
            acl=["public"],
        )
        for (doc_id, chunk), vector in zip(chunks, vectors, strict=True)
    ]
    judged = list(golden.judged_query_ids)
    started = time.perf_counter()
    query_vectors = {}
    query_ms = []
    for query_id in judged:
        t0 = time.perf_counter()
        query_vectors[query_id] = embedder.embed_query(golden.queries[query_id])
        query_ms.append((time.perf_counter() - t0) * 1000)
    prepared = prepare_vectors(vectors, spec.space.value)
    access = access_filter(["reader"])
    results: list[dict[str, Any]] = []
    with start_osmem(args.port) as server:
        index = OpenSearchChunkIndex(build_client(server.url, timeout=120), knn_mode="exact")
        index.ensure_index(generation)
        for start in range(0, len(docs), 500):
            index.write_chunks(generation.index_name, docs[start : start + 500])
        index.refresh(generation.index_name)
        baseline = None
        for label, retrieval, vector_spec in SETTINGS:
            state = quantize.train(vector_spec.precision, prepared)

            def request(
                query_id: str,
                retrieval: RetrievalSpec = retrieval,
                spec_: VectorSpec = vector_spec,
                state_: Any = state,
            ) -> IndexSearch:
                return IndexSearch(
                    vector=query_vectors[query_id],
                    k=args.k * 3,  # chunk hits collapse to docs, as the Evaluate step asks
                    filter=access,
                    text=golden.queries[query_id],
                    retrieval=retrieval,
                    vectors=spec_,
                    quantizer=state_,
                )

            index.search(generation.index_name, request(judged[0]))  # loads the cache, builds the scorer
            run_docs: dict[str, list[str]] = {}
            scored: dict[str, list[tuple[str, float]]] = {}
            timings: list[float] = []
            for query_id in judged:
                t0 = time.perf_counter()
                hits = index.search(generation.index_name, request(query_id))
                timings.append((time.perf_counter() - t0) * 1000)
                ranked = list(dict.fromkeys(h.source["doc_id"] for h in hits))
                best = {h.source["doc_id"]: h.score for h in reversed(hits)}
                run_docs[query_id] = ranked
                scored[query_id] = [(d, best[d]) for d in ranked]
            result = evaluate_run(run_docs, golden, k=args.k)
            if baseline is None:
                baseline = result
            comparison = compare(result, baseline)
            threshold = calibrate_threshold(top_hits(scored, golden), ThresholdPolicy())
            sizing = size_index(vector_spec, spec.dimension, len(docs))
            results.append(
                {
                    "setting": label,
                    "retrieval": retrieval.describe(),
                    "precision": vector_spec.describe(),
                    "ndcg": round(result.ndcg, 4),
                    "recall": round(result.recall, 4),
                    "mrr": round(result.mrr, 4),
                    "ndcg_delta_vs_float32": round(result.ndcg - baseline.ndcg, 4),
                    "wins": len(comparison.wins),
                    "losses": len(comparison.losses),
                    "memory_per_vector_bytes": round(sizing.memory_per_vector, 1),
                    "index_memory_bytes": round(sizing.index_memory),
                    "p50_ms": round(percentile(timings, 50), 2),
                    "p95_ms": round(percentile(timings, 95), 2),
                    "threshold": round(threshold.value, 4) if threshold else None,
                    "threshold_precision": round(threshold.precision, 3) if threshold else None,
                }
            )
    return {
        "model": spec.model_id,
        "corpus": str(args.corpus),
        "docs": len({d for d, _ in chunks}),
        "chunks": len(docs),
        "dimension": spec.dimension,
        "queries": len(judged),
        "k": args.k,
        "embedding_s": round(embed_s, 1),
        "query_embedding_p50_ms": round(percentile(query_ms, 50), 2),
        "wall_s": round(time.perf_counter() - started, 1),
        "settings": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model", default="minilm", help="catalog id (minilm, static-64, hash-256)")
    parser.add_argument("--corpus", type=Path, default=paths.FAQ_CORPUS)
    parser.add_argument("--queries", type=Path, default=paths.FAQ_QUERIES)
    parser.add_argument("--qrels", type=Path, default=paths.FAQ_QRELS)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--vector-cache", type=Path, default=Path(".dynembed/bench-vectors"))
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    k = result["k"]
    print(
        f"{result['model']}: {result['docs']} docs, {result['chunks']} chunks x {result['dimension']} dims, "
        f"{result['queries']} judged queries, k={k}; embedding {result['embedding_s']} s "
        f"(0 = cached), query embedding p50 {result['query_embedding_p50_ms']} ms"
    )
    header = (
        f"{'setting':<31} {f'nDCG@{k}':>8} {f'R@{k}':>6} {f'MRR@{k}':>7} {'dnDCG':>7} {'W/L':>7}"
        f" {'B/vector':>9} {'index MB':>9} {'p50 ms':>7} {'p95 ms':>7} {'threshold':>9}"
    )
    print(header)
    for row in result["settings"]:
        threshold = "-" if row["threshold"] is None else f"{row['threshold']:.4f}"
        print(
            f"{row['setting']:<31} {row['ndcg']:>8.3f} {row['recall']:>6.3f} {row['mrr']:>7.3f}"
            f" {row['ndcg_delta_vs_float32']:>+7.3f} {row['wins']:>3}/{row['losses']:<3}"
            f" {row['memory_per_vector_bytes']:>9,.0f} {row['index_memory_bytes'] / 1e6:>9.2f}"
            f" {row['p50_ms']:>7.1f} {row['p95_ms']:>7.1f} {threshold:>9}"
        )
    print("memory: 1.1 x (code bytes + 8 x 16) per vector, one copy; latency: the index search only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
