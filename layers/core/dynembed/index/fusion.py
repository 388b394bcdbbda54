"""Hybrid fusion: how OpenSearch's search pipelines combine the lexical and the vector sub-query,
computed here for local mode (and for tests), so both modes rank and score alike.

Formulas (opensearch-project/neural-search, see docs/rebuilds.md "Hybrid retrieval"):

- ``linear`` = normalization-processor ``min_max`` + ``arithmetic_mean``. Per sub-query over the
  hits it returned: ``n = (s - min) / (max - min)``; a result of exactly 0 becomes 0.001 (the
  worst hit still counts as found); when every hit has the same score, 1.0. A doc's score is
  ``sum(w_i * n_i) / sum(w_i)``; a doc a sub-query did not return has ``n_i = 0`` and its
  weight stays in the denominator.
- ``rrf`` = score-ranker-processor ``rrf``: ``sum(w_i / (rank_constant + rank_i))`` with ranks
  from 1, over the sub-queries that returned the doc (weights need OpenSearch >= 3.1).
"""

from __future__ import annotations

from collections.abc import Sequence

from dynembed.core.models import FusionMethod, RetrievalSpec
from dynembed.core.ports import SearchHit

MIN_SCORE = 0.001
SINGLE_RESULT_SCORE = 1.0


def min_max(scores: Sequence[float]) -> list[float]:
    """normalization-processor ``min_max`` over one sub-query's hits."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:
        return [SINGLE_RESULT_SCORE] * len(scores)
    return [((s - low) / (high - low)) or MIN_SCORE for s in scores]


def reciprocal_ranks(count: int, rank_constant: int) -> list[float]:
    """score-ranker-processor ``rrf`` over one sub-query's hits, best first."""
    return [1.0 / (rank_constant + rank) for rank in range(1, count + 1)]


def fuse(
    sub_results: Sequence[Sequence[SearchHit]],
    weights: Sequence[float],
    method: FusionMethod,
    k: int,
    rank_constant: int = 60,
) -> list[SearchHit]:
    """The top ``k`` of the fused ranking (ties: lower id first). Each list must be best first,
    as its sub-query returned it; a hit keeps the source of the first list that has it."""
    if len(sub_results) != len(weights):
        raise ValueError(f"{len(sub_results)} sub-query results for {len(weights)} weights")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    fused: dict[str, float] = {}
    sources: dict[str, SearchHit] = {}
    for hits, weight in zip(sub_results, weights, strict=True):
        unique = _first_occurrences(hits)
        if method is FusionMethod.RRF:
            parts = reciprocal_ranks(len(unique), rank_constant)
        else:
            parts = min_max([h.score for h in unique])
        for hit, part in zip(unique, parts, strict=True):
            fused[hit.id] = fused.get(hit.id, 0.0) + weight * part
            sources.setdefault(hit.id, hit)
    if method is FusionMethod.LINEAR:
        fused = {doc_id: score / total for doc_id, score in fused.items()}
    ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [SearchHit(id=doc_id, score=score, source=sources[doc_id].source) for doc_id, score in ranked]


def _first_occurrences(hits: Sequence[SearchHit]) -> list[SearchHit]:
    """A sub-query returns a doc once; a repeated id keeps its first (best) place."""
    seen: set[str] = set()
    unique = []
    for hit in hits:
        if hit.id not in seen:
            seen.add(hit.id)
            unique.append(hit)
    return unique


def fuse_for(
    spec: RetrievalSpec, lexical: Sequence[SearchHit], vector: Sequence[SearchHit], k: int
) -> list[SearchHit]:
    """Fusion as a hybrid generation's search pipeline does it (sub-queries: lexical, vector)."""
    return fuse(
        [lexical, vector],
        spec.weights(),
        spec.fusion or FusionMethod.LINEAR,
        k,
        rank_constant=spec.rank_constant or 60,
    )
