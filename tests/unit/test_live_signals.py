"""Live-query signals on fakes: the search flow tells ``LiveQuerySignals`` of each live search;
sampled ones are recorded (best score, result count, latency, weak against the generation's
calibrated threshold, similarity to the nearest golden query) with the text hashed unless the
operator opted in; a building candidate gets shadow jobs; nothing here can fail a search."""

from __future__ import annotations

import random
from typing import Any

import pytest

from dynembed.core.config import METRICS, Settings
from dynembed.core.models import GenerationStatus
from dynembed.core.samples import QuerySample, QueryText, query_digest
from dynembed.quality.evaluation import GoldenSet
from dynembed.quality.signals import (
    calibrate_weak_threshold,
    least_covered_queries,
    load_golden_vectors,
    summarize,
    weak_threshold,
)
from dynembed.query.signals import LiveQuerySignals, shadow_candidate
from dynembed.rebuild.calibrate import calibrate_generation
from dynembed.rebuild.generations import create, new_generation
from dynembed.wiring import Services
from tests.harness import Harness

pytestmark = pytest.mark.unit

TOPICS = {
    "tea": "Brewing green tea: steep the leaves at eighty degrees for two minutes.",
    "bike": "Fixing a flat bicycle tyre: remove the wheel, patch the inner tube, pump it up.",
    "bread": "Baking sourdough bread: feed the starter, fold the dough, bake in a hot oven.",
    "python": "Python list comprehensions build a list from an iterable in one expression.",
    "git": "Undo the last git commit with git reset, keeping the changes staged.",
    "rust": "Rust ownership: each value has one owner and is dropped when it goes out of scope.",
}
GOLDEN = GoldenSet(
    queries={
        "q-tea": "how long to steep green tea",
        "q-bike": "patch a flat bicycle tyre",
        "q-bread": "sourdough starter and baking bread",
        "q-python": "python list comprehension",
        "q-git": "undo last git commit",
        "q-rust": "rust ownership and scope",
    },
    qrels={f"q-{doc}": {doc: 1} for doc in TOPICS},
    name="topics",
)


class FixedRandom(random.Random):
    """Every draw returns ``value``: 0.0 samples everything, 0.99 nothing (at rates < 0.99)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


class SignalHarness(Harness):
    def services(self) -> Services:
        svc = super().services()
        svc.settings = Settings(index_alias=self.alias)
        return svc


def _harness(*, keep_text: bool = False, sample_rate: float = 1.0, shadow_rate: float = 0.0) -> Harness:
    h = SignalHarness()
    for doc_id, body in TOPICS.items():
        h.write(doc_id, title=doc_id, body=body, acl=["public"])
    h.run()
    h.signals = LiveQuerySignals(
        store=h.samples,
        registry=h.registry,
        telemetry=h.telemetry,
        golden_for=lambda gen: load_golden_vectors(gen, h.cache),
        sample_rate=sample_rate,
        keep_text=keep_text,
        shadow_queue=h.shadow_queue,
        shadow_rate=shadow_rate,
        rng=FixedRandom(0.0),
        cache_s=0.0,
    )
    return h


def test_threshold_is_the_10th_percentile_of_relevant_top_scores() -> None:
    # GIVEN top hits of 12 golden queries: 10 relevant scoring 0.50..0.95, 2 irrelevant ones
    hits = [(0.50 + 0.05 * n, True) for n in range(10)] + [(0.99, False), (0.10, False)]
    # WHEN calibrating
    threshold = calibrate_weak_threshold(hits, golden_set="g")
    # THEN it is numpy's 10th percentile of the relevant scores only (0.50 + 0.9 * 0.05)
    assert threshold is not None and threshold.value == pytest.approx(0.545)
    assert threshold.queries == 10
    # AND too few relevant top hits calibrate nothing
    assert calibrate_weak_threshold([(0.9, True)] * 4 + [(0.8, False)] * 20) is None


def test_a_threshold_field_on_the_generation_wins_over_the_report() -> None:
    h = Harness()
    gen = h.registry.update(h.generation.id, report={"weak_threshold": {"value": 0.4}})
    assert weak_threshold(gen) == 0.4
    assert weak_threshold(h.generation) is None

    # AND a calibrated field on the generation (the retrieval settings' threshold) comes first
    class WithField:
        def __init__(self) -> None:
            self.threshold = type("T", (), {"value": 0.7})()
            self.report = {"weak_threshold": {"value": 0.4}}

    assert weak_threshold(WithField()) == 0.7  # type: ignore[arg-type]


def test_sampled_search_records_its_signals_with_the_text_hashed() -> None:
    # GIVEN a calibrated generation and every live search sampled, text not kept
    h = _harness()
    svc = h.services()
    fields = calibrate_generation(svc, h.generation.id, GOLDEN, ["public"], k=5)
    assert fields["weak_threshold"] is not None and len(fields["golden_queries"]["keys"]) == 6
    threshold = fields["weak_threshold"]["value"]
    # WHEN a live query on the corpus and one far from it are searched through the alias
    on = svc.search("how long should green tea steep", "public", k=5)
    svc.search("zzqx vortex lattice quasar plumbing", "public", k=5)
    # AND a search naming its generation (an evaluation) is made
    svc.search("python list comprehension", "public", k=5, generation=h.generation.id)
    # THEN only the two live ones were sampled, each with its figures
    first, second = h.samples.sampled
    assert len(h.samples.sampled) == 2
    assert first.generation == h.generation.id and first.results == len(on.results)
    assert first.best_score == on.results[0].score and first.latency_ms > 0
    assert first.threshold == threshold and first.weak is (on.results[0].score < threshold)
    assert second.weak is True  # off the corpus: under the threshold
    # AND the query text is not kept, only its digest and length
    assert first.query.text is None
    assert first.query.sha256 == query_digest("how long should green tea steep")
    assert first.query.chars == len("how long should green tea steep")
    # AND the query sits nearer the golden set than the off-corpus one
    assert first.nearest_golden == "q-tea"
    assert first.golden_similarity is not None and second.golden_similarity is not None
    assert first.golden_similarity > second.golden_similarity
    # AND the values went to telemetry under the configured metric names
    assert list(h.telemetry.values[METRICS.zero_results]) == [0.0, 0.0]
    assert len(h.telemetry.values[METRICS.search_latency]) == 2
    assert list(h.telemetry.values[METRICS.weak_retrieval])[1] == 1.0


def test_text_is_kept_only_when_the_operator_opts_in() -> None:
    h = _harness(keep_text=True)
    h.services().search("undo a git commit", "public", k=3)
    assert h.samples.sampled[0].query.text == "undo a git commit"


def test_unsampled_searches_leave_no_trace_and_an_uncalibrated_generation_has_no_weak_flag() -> None:
    h = _harness(sample_rate=0.5)
    h.signals.rng = FixedRandom(0.7)
    h.services().search("green tea", "public")
    assert h.samples.sampled == []
    h.signals.rng = FixedRandom(0.2)
    h.services().search("green tea", "public")
    (sample,) = h.samples.sampled
    assert sample.threshold is None and sample.weak is None and sample.golden_similarity is None
    assert METRICS.weak_retrieval not in h.telemetry.values


def test_a_search_nobody_may_read_counts_as_zero_results() -> None:
    # GIVEN docs readable by everyone, but in no tenant: a search within a tenant finds nothing
    h = _harness()
    response = h.services().search("green tea", "public", tenant="nobody")
    assert response.results == []
    assert h.samples.sampled[-1].results == 0 and h.samples.sampled[-1].best_score is None
    assert list(h.telemetry.values[METRICS.zero_results])[-1] == 1.0


def test_a_failing_store_never_fails_the_search() -> None:
    h = _harness()

    class Broken:
        def put_sample(self, sample: Any) -> None:
            raise RuntimeError("table gone")

    h.signals.store = Broken()  # type: ignore[assignment]
    response = h.services().search("green tea", "public")
    assert response.results
    assert h.telemetry.get("QuerySignalErrors") == 1


def test_a_building_candidate_gets_shadow_jobs_with_the_active_answer() -> None:
    # GIVEN a candidate that is a write target and still building
    h = _harness(shadow_rate=1.0)
    candidate = new_generation(h.embedder.spec, h.chunker, h.index_prefix, generation_id="g2")
    create(h.registry, h.index, candidate)
    h.registry.update("g2", write_target=True)
    svc = h.services()
    # WHEN a live search runs as a user and a group
    response = svc.search("green tea", ["public", "eng"], k=4)
    # THEN one shadow job carries the query, the caller and the active doc ranking
    (job,) = h.shadow_queue.sent
    assert (job.candidate, job.active) == ("g2", h.generation.id)
    assert job.text == "green tea" and job.principals == ["public", "eng"] and job.k == 4
    assert job.active_docs == list(dict.fromkeys(r.doc_id for r in response.results))
    # AND once the candidate is promoted or failed, no more are sent
    h.registry.update("g2", status=GenerationStatus.FAILED, write_target=False)
    svc.search("green tea", "public")
    assert len(h.shadow_queue.sent) == 1


def test_shadow_candidate_is_a_building_or_evaluating_write_target() -> None:
    h = Harness()
    gens = {
        status: new_generation(h.embedder.spec, h.chunker, "p", generation_id=f"g-{status.value}")
        for status in GenerationStatus
    }
    listed = [g.model_copy(update={"status": s, "write_target": True}) for s, g in gens.items()]
    chosen = shadow_candidate(listed, serving="g-active")
    assert chosen is not None and chosen.status in (GenerationStatus.BUILDING, GenerationStatus.EVALUATING)
    assert shadow_candidate([g.model_copy(update={"write_target": False}) for g in listed], "x") is None


def test_summary_rates_latency_drift_and_least_covered() -> None:
    def sample(n: int, score: float | None, results: int, similarity: float, text: str) -> QuerySample:
        return QuerySample(
            generation="g",
            at=1000.0 + n,
            query=QueryText.of(text, keep=n % 2 == 0),
            best_score=score,
            results=results,
            latency_ms=10.0 * (n + 1),
            threshold=0.5,
            golden_similarity=similarity,
            nearest_golden="q1",
        )

    samples = [
        sample(0, 0.9, 5, 0.95, "close"),
        sample(1, 0.4, 5, 0.30, "far away"),
        sample(2, None, 0, 0.10, "nothing"),
        sample(3, 0.7, 5, 0.80, "close enough"),
    ]
    summary = summarize("g", samples)
    assert summary.samples == 4 and summary.weak_samples == 4
    assert summary.weak_retrieval_rate == pytest.approx(2 / 4)  # 0.4 and nothing found
    assert summary.zero_result_rate == pytest.approx(1 / 4)
    assert summary.latency_ms == {"p50": 20.0, "p95": 40.0, "max": 40.0}
    assert summary.query_drift == pytest.approx((0.95 + 0.30 + 0.10 + 0.80) / 4)
    assert [row.query for row in summary.least_covered[:2]] == [
        "nothing",
        f"sha256:{query_digest('far away')[:12]} (8 chars)",
    ]


def test_least_covered_queries_reads_the_store_in_the_canary_shape() -> None:
    h = _harness(keep_text=True)
    svc = h.services()
    calibrate_generation(svc, h.generation.id, GOLDEN, ["public"], k=5)
    for text in ("green tea steeping", "quantum chromodynamics lattice", "green tea steeping"):
        svc.search(text, "public", k=5)
    rows = least_covered_queries(h.samples, h.generation.id, limit=5)
    assert [r["query"] for r in rows] == ["quantum chromodynamics lattice", "green tea steeping"]
    assert set(rows[0]) >= {"query", "score", "hits", "golden_similarity", "nearest_golden"}
