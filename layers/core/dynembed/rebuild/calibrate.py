"""Calibrate a generation for its live-query signals: the weak-retrieval threshold and the golden
query embeddings the drift figure compares live queries with (``dynembed.quality.signals``).

The evaluate step calibrates every candidate on the golden set it was judged on; ``dynembed
signals calibrate`` does the same for a generation that never went through a rebuild (the first
one of an install).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dynembed.core.models import Generation
from dynembed.embedders.memo import QueryMemos
from dynembed.quality.evaluation import GoldenSet
from dynembed.quality.signals import (
    MAX_GOLDEN_VECTORS,
    REPORT_GOLDEN_KEY,
    REPORT_THRESHOLD_KEY,
    calibrate_weak_threshold,
    golden_cache_key,
    golden_record,
)

TopHits = Mapping[str, tuple[str, float]]
"""Golden query text -> (doc id, score) of its top hit."""


def golden_top_hits(
    svc: Any, gen: Generation, golden: GoldenSet, principal: Sequence[str], k: int, queries: QueryMemos
) -> dict[str, tuple[str, float]]:
    """Run every judged golden query on ``gen`` (by id) and keep each top hit; the query
    vectors are embedded in one batch and kept in ``queries``."""
    memo = queries.embedder_for(gen.model)
    memo.prime([golden.queries[query_id] for query_id in golden.judged_query_ids])
    tops: dict[str, tuple[str, float]] = {}
    for query_id in golden.judged_query_ids:
        text = golden.queries[query_id]
        response = svc.search(
            text,
            list(principal),
            k=k,
            generation=gen.id,
            embedder_for=queries.embedder_for,
            tenant_isolation=False,
        )
        if response.results:
            tops[text] = (response.results[0].doc_id, response.results[0].score)
    return tops


def calibration_fields(
    svc: Any, gen: Generation, golden: GoldenSet, tops: TopHits, queries: QueryMemos | None = None
) -> dict[str, Any]:
    """The report fields that calibrate ``gen``: ``weak_threshold`` (None when too few golden
    queries had a relevant top hit) and ``golden_queries`` (the cache keys of the golden query
    embeddings, written to the embedding cache here; embedded in one batch, or taken from
    ``queries`` when the golden-set run kept them)."""
    top_hits: list[tuple[float, bool]] = []
    for query_id in golden.judged_query_ids:
        hit = tops.get(golden.queries[query_id])
        if hit is not None:
            doc, score = hit
            top_hits.append((score, golden.qrels.get(query_id, {}).get(doc, 0) >= 1))
    threshold = calibrate_weak_threshold(top_hits, golden_set=golden.name)
    fields: dict[str, Any] = {REPORT_THRESHOLD_KEY: threshold.model_dump() if threshold else None}
    cache = getattr(svc, "cache", None)
    if cache is not None:
        embedder = (queries or QueryMemos(svc.embedder_for)).embedder_for(gen.model)
        chosen = list(golden.judged_query_ids)[:MAX_GOLDEN_VECTORS]
        keys = {query_id: golden_cache_key(golden.queries[query_id]) for query_id in chosen}
        known = cache.get_many(gen.model.model_id, list(keys.values()))
        missing = [query_id for query_id in chosen if keys[query_id] not in known]
        vectors = (
            embedder.embed_queries([golden.queries[query_id] for query_id in missing]) if missing else []
        )
        fresh = {keys[query_id]: vector for query_id, vector in zip(missing, vectors, strict=True)}
        if fresh:
            cache.put_many(gen.model.model_id, fresh)
        fields[REPORT_GOLDEN_KEY] = golden_record(gen.model.model_id, keys, golden.name)
    return fields


def calibrate_generation(
    svc: Any, generation_id: str, golden: GoldenSet, principal: Sequence[str], k: int = 30
) -> dict[str, Any]:
    """Calibrate one registered generation on ``golden`` and store the fields on its report."""
    gen = svc.registry.get(generation_id)
    svc.index.refresh(gen.index_name)
    queries = QueryMemos(svc.embedder_for)
    tops = golden_top_hits(svc, gen, golden, principal, k, queries)
    fields = calibration_fields(svc, gen, golden, tops, queries)
    svc.registry.update(gen.id, report={**(gen.report or {}), **fields})
    return fields
