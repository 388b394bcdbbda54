"""Live-query signals: the search flow's ``QuerySignals`` port, sampling live searches.

For a sampled search (``query_sample_rate``) it records the generation that answered, the best
score, the result count and the latency, whether the best score falls under the generation's
calibrated threshold, and how close the query sits to the nearest golden query; the values go
to CloudWatch (EMF, through ``Telemetry``) for the alarms and the sample to the sample store
(DynamoDB with TTL) for summaries and the canary report. Query text is stored only when the
operator opted in (``query_keep_text``).

While a rebuild's candidate is a write target (building or evaluating), a share of live searches
(``shadow_sample_rate``) is also handed to the shadow queue with the active generation's answer;
the shadow function runs it on the candidate off the response path (``dynembed.quality.shadow``).

Nothing here may fail a search: every error is logged and counted, never raised.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dynembed.core.config import METRICS
from dynembed.core.models import Generation, GenerationStatus
from dynembed.core.observability import logger
from dynembed.core.ports import QuerySampleStore, Registry, ShadowQueue
from dynembed.core.samples import LiveQuery, QuerySample, QueryText, ShadowJob
from dynembed.core.telemetry import Telemetry
from dynembed.quality.signals import GoldenVectors, weak_threshold

CANDIDATE_STATUSES = (GenerationStatus.BUILDING, GenerationStatus.EVALUATING)


def shadow_candidate(generations: list[Generation], serving: str) -> Generation | None:
    """The rebuild candidate live traffic is shadowed on: a write target still being built or
    evaluated, not the one serving (the newest, should there be several)."""
    candidates = [
        g for g in generations if g.write_target and g.status in CANDIDATE_STATUSES and g.id != serving
    ]
    return max(candidates, key=lambda g: g.created_at) if candidates else None


@dataclass
class _Cached:
    value: object
    until: float


@dataclass
class LiveQuerySignals:
    store: QuerySampleStore
    registry: Registry
    telemetry: Telemetry
    golden_for: Callable[[Generation], GoldenVectors | None]
    sample_rate: float
    keep_text: bool = False
    shadow_queue: ShadowQueue | None = None
    shadow_rate: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    cache_s: float = 30.0
    """Generations and the shadow candidate are read from the registry at most this often."""
    _cache: dict[str, _Cached] = field(default_factory=dict)

    def observe(self, query: LiveQuery) -> None:
        try:
            if self.rng.random() < self.sample_rate:
                self._sample(query)
            if self.shadow_queue is not None and self.rng.random() < self.shadow_rate:
                self._shadow(query)
        except Exception as exc:  # a signal must never fail the search it observes
            self.telemetry.count(METRICS.query_signal_errors)
            logger.warning("query signal not recorded", error=f"{type(exc).__name__}: {exc}")

    # ---- samples ---------------------------------------------------------------------------------
    def _sample(self, query: LiveQuery) -> None:
        gen = self._generation(query.generation)
        threshold = weak_threshold(gen)
        similarity, nearest = None, None
        golden = self._golden(gen)
        if golden is not None:
            similarity, nearest = golden.nearest(query.vector)
        sample = QuerySample(
            generation=gen.id,
            at=self.clock(),
            query=QueryText.of(query.text, keep=self.keep_text),
            best_score=query.best_score,
            results=len(query.hits),
            latency_ms=query.latency_ms,
            threshold=threshold,
            golden_similarity=similarity,
            nearest_golden=nearest,
        )
        self.telemetry.observe(METRICS.search_latency, sample.latency_ms, "Milliseconds")
        self.telemetry.observe(METRICS.zero_results, 1.0 if sample.results == 0 else 0.0, "Count")
        if sample.weak is not None:
            self.telemetry.observe(METRICS.weak_retrieval, 1.0 if sample.weak else 0.0, "Count")
        if similarity is not None:
            self.telemetry.observe(METRICS.golden_similarity, similarity)
        self.store.put_sample(sample)

    # ---- shadow ---------------------------------------------------------------------------------
    def _shadow(self, query: LiveQuery) -> None:
        candidate = self._candidate(query.generation)
        if candidate is None or self.shadow_queue is None:
            return
        self.shadow_queue.send(
            ShadowJob(
                candidate=candidate.id,
                active=query.generation,
                text=query.text,
                principals=list(query.principals),
                tenant=query.tenant,
                filters=dict(query.filters) if query.filters else None,
                k=query.k,
                active_docs=query.doc_ranking,
                active_top_score=query.best_score,
                sampled_at=self.clock(),
            )
        )
        self.telemetry.count(METRICS.shadow_searches_enqueued)

    # ---- cached registry reads ----------------------------------------------------------------------
    def _generation(self, generation_id: str) -> Generation:
        def load() -> Generation:
            return self.registry.get(generation_id)

        gen = self._cached(f"gen:{generation_id}", load)
        assert isinstance(gen, Generation)
        return gen

    def _golden(self, gen: Generation) -> GoldenVectors | None:
        key = f"golden:{gen.id}:{(gen.report or {}).get('created_at')}"
        golden = self._cached(key, lambda: self.golden_for(gen), ttl_s=max(self.cache_s, 300.0))
        return golden if isinstance(golden, GoldenVectors) else None

    def _candidate(self, serving: str) -> Generation | None:
        candidate = self._cached(
            f"candidate:{serving}", lambda: shadow_candidate(self.registry.list(), serving)
        )
        return candidate if isinstance(candidate, Generation) else None

    def _cached(self, key: str, load: Callable[[], object], ttl_s: float | None = None) -> object:
        now = self.clock()
        hit = self._cache.get(key)
        if hit is None or hit.until <= now:
            hit = _Cached(load(), now + (self.cache_s if ttl_s is None else ttl_s))
            self._cache[key] = hit
        return hit.value
