"""Search latency of exact k-NN in local mode, through the real adapter against osmem-server.

Loads N random unit vectors with random ACLs (each chunk in 1-3 of G groups) into a fresh
osmem-server via ``OpenSearchChunkIndex.write_chunks``, then times
``OpenSearchChunkIndex(knn_mode="exact").knn_search`` as a principal with 2 groups, filtered by
ACL and tenant. The first query after loading (it fills the in-process cache) is reported apart,
as is the first query after a single-chunk write (incremental cache patch). Results of a few
queries are checked against a numpy brute force, so speed cannot come from wrong answers.

    python bench/search_latency.py [--chunks 20000 --dim 384 --k 10 --queries 200 --groups 20 --json]

Percentiles are nearest-rank over the timed queries.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from dynembed.core.models import ChunkDocument, ChunkerSpec, Generation, ModelSpec
from dynembed.index.filters import access_filter
from dynembed.index.opensearch import OpenSearchChunkIndex, build_client
from dynembed_ops.local.osmem import start_osmem

TENANT = "acme"
PRINCIPAL = ["g3", "g11"]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def make_docs(
    vectors: np.ndarray, acls: list[list[str]], generation: Generation, start: int = 0
) -> list[ChunkDocument]:
    now = time.time()
    return [
        ChunkDocument(
            doc_id=f"doc-{start + i}",
            chunk_key="c0",
            chunk_index=0,
            text=f"chunk {start + i}",
            content_hash=f"h{start + i}",
            embedding=vector.tolist(),
            source_version=1,
            indexed_at=now,
            model_id=generation.model.model_id,
            chunker_version=generation.chunker.version,
            schema_version=1,
            generation=generation.id,
            tenant=TENANT,
            acl=acl,
            metadata={"lang": "en"},
        )
        for i, (vector, acl) in enumerate(zip(vectors, acls, strict=True))
    ]


def brute_force(vectors: np.ndarray, allowed: np.ndarray, query: np.ndarray, k: int) -> list[str]:
    scores = np.where(allowed, vectors @ query, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [f"doc-{i}:c0" for i in order if np.isfinite(scores[i])]


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    vectors = rng.standard_normal((args.chunks, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    groups = [f"g{i}" for i in range(args.groups)]
    acls = [
        sorted(rng.choice(groups, size=int(rng.integers(1, 4)), replace=False).tolist())
        for _ in range(args.chunks)
    ]
    allowed = np.array([bool(set(acl) & set(PRINCIPAL)) for acl in acls])

    generation = Generation(
        id="bench",
        index_name="bench-chunks",
        model=ModelSpec(provider="bench", name="random", dimension=args.dim),
        chunker=ChunkerSpec(),
    )
    with start_osmem(args.port) as server:
        client = build_client(server.url, timeout=120)
        writer = OpenSearchChunkIndex(client)
        writer.ensure_index(generation)
        started = time.perf_counter()
        for start in range(0, args.chunks, args.load_batch):
            docs = make_docs(
                vectors[start : start + args.load_batch],
                acls[start : start + args.load_batch],
                generation,
                start,
            )
            report = writer.write_chunks(generation.index_name, docs)
            assert report.written == len(docs), report
        load_s = time.perf_counter() - started

        index = OpenSearchChunkIndex(client, knn_mode="exact")
        cache = index.exact
        assert cache is not None
        filt = access_filter(PRINCIPAL, TENANT)
        queries = rng.standard_normal((args.queries + 2, args.dim)).astype(np.float32)

        started = time.perf_counter()
        first = index.knn_search(generation.index_name, queries[0].tolist(), args.k, filt)
        warmup_ms = (time.perf_counter() - started) * 1000

        timings: list[float] = []
        returned: list[int] = []
        mismatches = 0
        for n, query in enumerate(queries[1 : args.queries + 1]):
            started = time.perf_counter()
            hits = index.knn_search(generation.index_name, query.tolist(), args.k, filt)
            timings.append((time.perf_counter() - started) * 1000)
            returned.append(len(hits))
            if n < args.check:
                unit = query / np.linalg.norm(query)
                if [h.id for h in hits] != brute_force(vectors, allowed, unit, args.k):
                    mismatches += 1

        # One chunk rewritten by a writer, then the next search: the incremental patch path.
        changed = make_docs(vectors[:1], [PRINCIPAL[:1]], generation)[0].model_copy(
            update={"source_version": 2}
        )
        writer.write_chunks(generation.index_name, [changed])
        started = time.perf_counter()
        index.knn_search(generation.index_name, queries[-1].tolist(), args.k, filt)
        after_write_ms = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        for _ in range(20):
            client.indices.stats(index=generation.index_name, metric="docs,indexing")
        validation_ms = (time.perf_counter() - started) * 1000 / 20

    return {
        "chunks": args.chunks,
        "dim": args.dim,
        "k": args.k,
        "queries": len(timings),
        "groups": args.groups,
        "principal_groups": len(PRINCIPAL),
        "permitted_fraction": round(float(allowed.mean()), 3),
        "load_s": round(load_s, 2),
        "load_chunks_per_s": round(args.chunks / load_s),
        "first_query_ms": round(warmup_ms, 1),
        "p50_ms": round(percentile(timings, 50), 2),
        "p95_ms": round(percentile(timings, 95), 2),
        "p99_ms": round(percentile(timings, 99), 2),
        "mean_ms": round(sum(timings) / len(timings), 2),
        "first_query_after_one_write_ms": round(after_write_ms, 1),
        "validation_request_ms": round(validation_ms, 2),
        "min_hits_returned": min(returned),
        "first_query_hits": len(first),
        "checked_against_brute_force": min(args.check, len(timings)),
        "brute_force_mismatches": mismatches,
        "cache": vars(cache.stats),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--check", type=int, default=20, help="queries compared with a numpy brute force")
    parser.add_argument("--load-batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=None, help="osmem-server port (default: a free one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['chunks']} chunks x {result['dim']} dims, k={result['k']}, {result['queries']} queries, "
            f"principal in {result['principal_groups']} of {result['groups']} groups "
            f"({result['permitted_fraction']:.0%} of chunks permitted), {result['cpus']} CPUs"
        )
        print(f"load: {result['load_s']} s ({result['load_chunks_per_s']} chunks/s through write_chunks)")
        print(f"first query (fills the cache): {result['first_query_ms']} ms")
        print(f"p50 {result['p50_ms']} ms   p95 {result['p95_ms']} ms   p99 {result['p99_ms']} ms")
        print(f"first query after a one-chunk write: {result['first_query_after_one_write_ms']} ms")
        print(f"validation request alone: {result['validation_request_ms']} ms")
        print(
            f"brute-force check: {result['brute_force_mismatches']} mismatches in "
            f"{result['checked_against_brute_force']} queries; min hits returned {result['min_hits_returned']}"
        )
    return 1 if result["brute_force_mismatches"] or result["min_hits_returned"] < result["k"] else 0


if __name__ == "__main__":
    sys.exit(main())
