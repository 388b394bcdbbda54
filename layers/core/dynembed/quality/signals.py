"""What sampled live queries say about a generation: weak retrieval, zero results, latency, and
how far live traffic strays from the golden set the generation was judged on (query drift).

The weak-retrieval threshold is the generation's own, calibrated on its golden set when it was
evaluated: the 10th percentile of the top-1 scores of the golden queries whose top hit is
relevant. Scores are comparable only within one generation (another model, another scale), so
a live query is weak when its best score falls below what nine in ten well-answered golden
queries reach *in that generation*.

Query drift is the mean cosine similarity of each sampled live query to its nearest golden
query, both embedded by the generation's model. The golden query embeddings are computed once,
at evaluation, and kept in the embedding cache under ``query:<sha256>`` keys listed on the
generation's report; the search function reads them once per generation and process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from dynembed.core.models import Generation
from dynembed.core.ports import EmbeddingCache, QuerySampleStore
from dynembed.core.samples import QuerySample
from dynembed.core.telemetry import percentile

WEAK_QUANTILE = 10.0
"""Percentile of relevant top-1 golden scores that makes the threshold."""
MIN_CALIBRATION_QUERIES = 5
"""Fewer relevant top hits than this is too little to calibrate on."""
MAX_GOLDEN_VECTORS = 1000
"""Golden queries embedded for the drift figure (their keys ride on the registry item)."""
REPORT_THRESHOLD_KEY = "weak_threshold"
REPORT_GOLDEN_KEY = "golden_queries"


# ---- the weak-retrieval threshold ------------------------------------------------------------------


class WeakThreshold(BaseModel):
    model_config = ConfigDict(frozen=True)

    value: float
    method: str = f"p{WEAK_QUANTILE:g} of top-1 scores of golden queries whose top hit is relevant"
    queries: int = Field(ge=0)
    """Golden queries whose top hit is relevant (the calibration sample)."""
    golden_set: str | None = None


def calibrate_weak_threshold(
    top_hits: Sequence[tuple[float, bool]], *, golden_set: str | None = None
) -> WeakThreshold | None:
    """``top_hits``: (top-1 score, is that doc relevant) per golden query that found anything.
    None with fewer than MIN_CALIBRATION_QUERIES relevant top hits."""
    scores = [score for score, relevant in top_hits if relevant]
    if len(scores) < MIN_CALIBRATION_QUERIES:
        return None
    value = float(np.percentile(np.asarray(scores, dtype=float), WEAK_QUANTILE))
    return WeakThreshold(value=value, queries=len(scores), golden_set=golden_set)


def weak_threshold(generation: Generation) -> float | None:
    """The generation's calibrated score threshold, or None.

    The one place that decides where it comes from: a ``threshold`` field on the generation when
    the model has one (calibrated by the retrieval settings), else what evaluation stored on the
    generation's report."""
    field = getattr(generation, "threshold", None)
    value = getattr(field, "value", None)
    if value is not None:
        return float(value)
    stored = (generation.report or {}).get(REPORT_THRESHOLD_KEY)
    if isinstance(stored, Mapping) and isinstance(stored.get("value"), int | float):
        return float(stored["value"])
    return None


# ---- golden query embeddings ------------------------------------------------------------------------


def golden_cache_key(text: str) -> str:
    """Embedding-cache key of a golden query (``query:`` keeps it apart from passage hashes:
    some models embed queries differently)."""
    return "query:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class GoldenVectors:
    """Unit-length golden query embeddings of one generation, one row per query id."""

    query_ids: tuple[str, ...]
    matrix: npt.NDArray[np.float32]

    @classmethod
    def of(cls, vectors: Mapping[str, Sequence[float]]) -> GoldenVectors | None:
        ids = tuple(vectors)
        if not ids:
            return None
        matrix = np.asarray([vectors[i] for i in ids], dtype=np.float32)
        return cls(ids, _unit_rows(matrix))

    def nearest(self, vector: Sequence[float]) -> tuple[float, str]:
        """(cosine similarity, query id) of the golden query closest to ``vector``."""
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        if norm == 0.0 or query.shape[0] != self.matrix.shape[1]:
            raise ValueError(f"need a non-zero {self.matrix.shape[1]}-d query vector, got {query.shape[0]}-d")
        sims = self.matrix @ (query / norm)
        best = int(np.argmax(sims))
        return float(sims[best]), self.query_ids[best]


def _unit_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: npt.NDArray[np.float32] = (matrix / norms).astype(np.float32)
    return unit


def golden_record(model_id: str, keys: Mapping[str, str], golden_set: str) -> dict[str, Any]:
    """What the generation's report keeps to find its golden embeddings again."""
    return {"model_id": model_id, "golden_set": golden_set, "keys": dict(keys)}


def load_golden_vectors(generation: Generation, cache: EmbeddingCache | None) -> GoldenVectors | None:
    """The generation's golden query embeddings from the cache; None when it has none recorded."""
    record = (generation.report or {}).get(REPORT_GOLDEN_KEY)
    if (
        cache is None
        or not isinstance(record, Mapping)
        or record.get("model_id") != generation.model.model_id
    ):
        return None
    keys: Mapping[str, str] = record.get("keys") or {}
    found = cache.get_many(generation.model.model_id, list(keys.values()))
    return GoldenVectors.of({qid: found[key] for qid, key in keys.items() if key in found})


# ---- summaries ------------------------------------------------------------------------------------------


class CoveredQuery(BaseModel):
    """A live query and how well the golden set covers it (the canary report's
    ``least_covered_queries`` rows: ``query``, ``score`` = its top score, ``hits``)."""

    model_config = ConfigDict(frozen=True)

    query: str
    score: float | None
    hits: int
    golden_similarity: float
    nearest_golden: str | None = None
    at: float


class SignalSummary(BaseModel):
    """The figures of one generation's sampled live queries over a window."""

    model_config = ConfigDict(frozen=True)

    generation: str
    samples: int
    since: float | None = None
    threshold: float | None = None
    """The newest sample's threshold (None: the generation is not calibrated)."""
    weak_retrieval_rate: float | None = None
    weak_samples: int = 0
    """Samples taken with a threshold (the rate's denominator)."""
    zero_result_rate: float | None = None
    latency_ms: dict[str, float] = Field(default_factory=dict)
    """p50, p95 (nearest rank), max."""
    query_drift: float | None = None
    """Mean cosine similarity of each live query to its nearest golden query (1 = on the golden set)."""
    drift_samples: int = 0
    least_covered: list[CoveredQuery] = Field(default_factory=list)


def summarize(
    generation: str, samples: Sequence[QuerySample], *, since: float | None = None, least: int = 10
) -> SignalSummary:
    if not samples:
        return SignalSummary(generation=generation, samples=0, since=since)
    judged = [s.weak for s in samples if s.weak is not None]
    latencies = [s.latency_ms for s in samples]
    similar = [s.golden_similarity for s in samples if s.golden_similarity is not None]
    newest = max(samples, key=lambda s: s.at)
    return SignalSummary(
        generation=generation,
        samples=len(samples),
        since=since,
        threshold=newest.threshold,
        weak_retrieval_rate=sum(judged) / len(judged) if judged else None,
        weak_samples=len(judged),
        zero_result_rate=sum(1 for s in samples if s.results == 0) / len(samples),
        latency_ms={
            "p50": float(percentile(latencies, 50) or 0.0),
            "p95": float(percentile(latencies, 95) or 0.0),
            "max": max(latencies),
        },
        query_drift=float(np.mean(similar)) if similar else None,
        drift_samples=len(similar),
        least_covered=least_covered(samples, least),
    )


def least_covered(samples: Sequence[QuerySample], limit: int = 10) -> list[CoveredQuery]:
    """The live queries farthest from every golden query, least covered first; a query asked
    several times is listed once (its latest sample)."""
    latest: dict[str, QuerySample] = {}
    for sample in samples:
        if sample.golden_similarity is None:
            continue
        seen = latest.get(sample.query.sha256)
        if seen is None or sample.at > seen.at:
            latest[sample.query.sha256] = sample
    ordered = sorted(latest.values(), key=lambda s: (s.golden_similarity or 0.0, s.query.sha256))
    return [
        CoveredQuery(
            query=s.query.label,
            score=s.best_score,
            hits=s.results,
            golden_similarity=float(s.golden_similarity or 0.0),
            nearest_golden=s.nearest_golden,
            at=s.at,
        )
        for s in ordered[:limit]
    ]


def least_covered_queries(
    store: QuerySampleStore, generation: str, *, limit: int = 10, since: float | None = None
) -> list[dict[str, Any]]:
    """For the canary report (``canary.least_covered_queries``): the sampled live queries of
    ``generation`` the golden set covers least, as ``{query, score, hits, golden_similarity,
    nearest_golden, at}`` rows (``score`` is the query's top retrieval score)."""
    return [row.model_dump() for row in least_covered(store.samples(generation, since=since), limit)]


def signal_summary(
    store: QuerySampleStore, generation: str, *, since: float | None = None, limit: int = 1000
) -> SignalSummary:
    return summarize(generation, store.samples(generation, since=since, limit=limit), since=since)
