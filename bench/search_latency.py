"""Search latency in local mode (exact k-NN, and hybrid BM25 + k-NN), through the real adapter
against osmem-server, for each retrieval and vector precision.

Loads N random unit vectors, each with a short random text (words from a Zipf-distributed
vocabulary) and a random ACL (each chunk in 1-3 of G groups), into a fresh osmem-server via
``OpenSearchChunkIndex.write_chunks``, then times ``OpenSearchChunkIndex(knn_mode="exact").search``
as a principal with 2 groups, filtered by ACL and tenant. The first query after loading (it
fills the in-process cache) is reported apart, as is the first query after a single-chunk write
(incremental cache patch). Checks: float32 vector results equal a numpy brute force; every hit
of every setting is one the principal may read (the filter holds in both hybrid sub-queries);
quantized settings report their recall@k against that brute force.

    python bench/search_latency.py [--chunks 20000 --dim 384 --k 10 --queries 200 --groups 20]
        [--retrieval vector|hybrid --fusion linear|rrf --lexical-weight 0.3]
        [--precision float32|float16|byte|binary --on-disk --oversample F] [--all] [--json]

``--all`` measures vector at every precision and hybrid (linear and rrf) in one run. Percentiles
are nearest-rank over the timed queries.
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

from dynembed.core.models import (
    ChunkDocument,
    ChunkerSpec,
    Generation,
    ModelSpec,
    RetrievalSpec,
    VectorPrecision,
    VectorSpec,
)
from dynembed.core.ports import IndexSearch
from dynembed.index import quantize
from dynembed.index.filters import access_filter
from dynembed.index.opensearch import OpenSearchChunkIndex, build_client
from dynembed.index.scoring import prepare_vectors
from dynembed_ops.local.osmem import start_osmem

TENANT = "acme"
PRINCIPAL = ["g3", "g11"]
VOCABULARY = 3000
WORDS_PER_CHUNK = (30, 90)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def words(rng: np.random.Generator, count: int) -> list[str]:
    """Pseudo-words drawn from a Zipf-like distribution, as text is."""
    ranks = np.minimum(rng.zipf(1.3, size=count), VOCABULARY) - 1
    return [f"w{int(r)}" for r in ranks]


def make_docs(
    vectors: np.ndarray,
    acls: list[list[str]],
    texts: list[str],
    generation: Generation,
    start: int = 0,
) -> list[ChunkDocument]:
    now = time.time()
    return [
        ChunkDocument(
            doc_id=f"doc-{start + i}",
            chunk_key="c0",
            chunk_index=0,
            text=text,
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
        for i, (vector, acl, text) in enumerate(zip(vectors, acls, texts, strict=True))
    ]


def brute_force(vectors: np.ndarray, allowed: np.ndarray, query: np.ndarray, k: int) -> list[str]:
    scores = np.where(allowed, vectors @ query, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [f"doc-{i}:c0" for i in order if np.isfinite(scores[i])]


def settings_to_run(args: argparse.Namespace) -> list[tuple[str, RetrievalSpec, VectorSpec]]:
    if args.all:
        runs = [(f"vector {p.value}", RetrievalSpec(), VectorSpec(precision=p)) for p in VectorPrecision]
        runs.append(
            ("vector binary, rescore x3", RetrievalSpec(), VectorSpec(precision="binary", oversample=3.0))
        )
        runs += [
            (f"hybrid {fusion}", RetrievalSpec(mode="hybrid", fusion=fusion), VectorSpec())
            for fusion in ("linear", "rrf")
        ]
        return runs
    retrieval = (
        RetrievalSpec(mode="hybrid", fusion=args.fusion, lexical_weight=args.lexical_weight)
        if args.retrieval == "hybrid"
        else RetrievalSpec()
    )
    vectors = VectorSpec(precision=args.precision, on_disk=args.on_disk, oversample=args.oversample)
    return [(f"{retrieval.describe()}, {vectors.describe()}", retrieval, vectors)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    vectors = rng.standard_normal((args.chunks, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    groups = [f"g{i}" for i in range(args.groups)]
    acls = [
        sorted(rng.choice(groups, size=int(rng.integers(1, 4)), replace=False).tolist())
        for _ in range(args.chunks)
    ]
    texts = [" ".join(words(rng, int(rng.integers(*WORDS_PER_CHUNK)))) for _ in range(args.chunks)]
    allowed = np.array([bool(set(acl) & set(PRINCIPAL)) for acl in acls])

    generation = Generation(
        id="bench",
        index_name="bench-chunks",
        model=ModelSpec(provider="bench", name="random", dimension=args.dim),
        chunker=ChunkerSpec(),
        retrieval=RetrievalSpec(mode="hybrid"),  # the text field analysed for BM25
    )
    with start_osmem(args.port) as server:
        client = build_client(server.url, timeout=120)
        writer = OpenSearchChunkIndex(client, knn_mode="exact")
        writer.ensure_index(generation)
        started = time.perf_counter()
        for start in range(0, args.chunks, args.load_batch):
            end = start + args.load_batch
            docs = make_docs(vectors[start:end], acls[start:end], texts[start:end], generation, start)
            report = writer.write_chunks(generation.index_name, docs)
            assert report.written == len(docs), report
        load_s = time.perf_counter() - started

        index = OpenSearchChunkIndex(client, knn_mode="exact")
        cache = index.exact
        assert cache is not None
        filt = access_filter(PRINCIPAL, TENANT)
        queries = rng.standard_normal((args.queries + 2, args.dim)).astype(np.float32)
        query_texts = [" ".join(words(rng, 3)) for _ in range(len(queries))]
        prepared = prepare_vectors(vectors, "cosinesimil")

        def request(n: int, retrieval: RetrievalSpec, spec: VectorSpec, state: Any) -> IndexSearch:
            return IndexSearch(
                vector=queries[n].tolist(),
                k=args.k,
                filter=filt,
                text=query_texts[n],
                retrieval=retrieval,
                vectors=spec,
                quantizer=state,
            )

        started = time.perf_counter()
        first = index.search(generation.index_name, request(0, RetrievalSpec(), VectorSpec(), None))
        warmup_ms = (time.perf_counter() - started) * 1000

        results = []
        for label, retrieval, spec in settings_to_run(args):
            state = quantize.train(spec.precision, prepared)
            index.search(generation.index_name, request(0, retrieval, spec, state))  # builds its scorer
            timings: list[float] = []
            returned: list[int] = []
            mismatches = denied = 0
            recall_hits = 0
            checked = 0
            for n in range(1, args.queries + 1):
                started = time.perf_counter()
                hits = index.search(generation.index_name, request(n, retrieval, spec, state))
                timings.append((time.perf_counter() - started) * 1000)
                returned.append(len(hits))
                denied += sum(1 for h in hits if not allowed[int(h.id.split("-")[1].split(":")[0])])
                if n <= args.check and not retrieval.hybrid:
                    unit = queries[n] / np.linalg.norm(queries[n])
                    truth = brute_force(vectors, allowed, unit, args.k)
                    checked += 1
                    recall_hits += len(set(truth) & {h.id for h in hits})
                    if not spec.quantized and [h.id for h in hits] != truth:
                        mismatches += 1
            results.append(
                {
                    "setting": label,
                    "retrieval": retrieval.describe(),
                    "precision": spec.describe(),
                    "p50_ms": round(percentile(timings, 50), 2),
                    "p95_ms": round(percentile(timings, 95), 2),
                    "p99_ms": round(percentile(timings, 99), 2),
                    "mean_ms": round(sum(timings) / len(timings), 2),
                    "min_hits_returned": min(returned),
                    "denied_hits": denied,
                    "brute_force_mismatches": mismatches,
                    "recall_at_k_vs_float32": round(recall_hits / (checked * args.k), 3) if checked else None,
                }
            )

        # One chunk rewritten by a writer, then the next search: the incremental patch path.
        changed = make_docs(vectors[:1], [PRINCIPAL[:1]], texts[:1], generation)[0].model_copy(
            update={"source_version": 2}
        )
        writer.write_chunks(generation.index_name, [changed])
        started = time.perf_counter()
        index.search(generation.index_name, request(len(queries) - 1, RetrievalSpec(), VectorSpec(), None))
        after_write_ms = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        for _ in range(20):
            client.indices.stats(index=generation.index_name, metric="docs,indexing")
        validation_ms = (time.perf_counter() - started) * 1000 / 20

    main_result = results[0]
    return {
        "chunks": args.chunks,
        "dim": args.dim,
        "k": args.k,
        "queries": args.queries,
        "groups": args.groups,
        "principal_groups": len(PRINCIPAL),
        "permitted_fraction": round(float(allowed.mean()), 3),
        "load_s": round(load_s, 2),
        "load_chunks_per_s": round(args.chunks / load_s),
        "first_query_ms": round(warmup_ms, 1),
        **{key: main_result[key] for key in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")},
        "first_query_after_one_write_ms": round(after_write_ms, 1),
        "validation_request_ms": round(validation_ms, 2),
        "min_hits_returned": min(r["min_hits_returned"] for r in results),
        "first_query_hits": len(first),
        "checked_against_brute_force": min(args.check, args.queries),
        "brute_force_mismatches": sum(r["brute_force_mismatches"] for r in results),
        "denied_hits": sum(r["denied_hits"] for r in results),
        "settings": results,
        "cache": vars(cache.stats),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--retrieval", choices=("vector", "hybrid"), default="vector")
    parser.add_argument("--fusion", choices=("linear", "rrf"), default="linear")
    parser.add_argument("--lexical-weight", type=float, default=0.3)
    parser.add_argument("--precision", choices=[p.value for p in VectorPrecision], default="float32")
    parser.add_argument("--on-disk", action="store_true")
    parser.add_argument("--oversample", type=float, default=None)
    parser.add_argument("--all", action="store_true", help="every precision and both hybrid fusions")
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
        print(f"{'setting':<32} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'recall@k':>9} {'denied':>7}")
        for row in result["settings"]:
            recall = "-" if row["recall_at_k_vs_float32"] is None else f"{row['recall_at_k_vs_float32']:.3f}"
            print(
                f"{row['setting']:<32} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['p99_ms']:>8}"
                f" {recall:>9} {row['denied_hits']:>7}"
            )
        print(f"first query after a one-chunk write: {result['first_query_after_one_write_ms']} ms")
        print(f"validation request alone: {result['validation_request_ms']} ms")
        print(
            f"brute-force check (float32): {result['brute_force_mismatches']} mismatches in "
            f"{result['checked_against_brute_force']} queries; min hits returned {result['min_hits_returned']}"
        )
    failed = (
        result["brute_force_mismatches"] or result["denied_hits"] or result["min_hits_returned"] < result["k"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
