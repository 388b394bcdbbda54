"""Calibrated score thresholds: from a golden set's top hits, stored with the generation and
returned with every search response; and hybrid search over the fakes keeps the access rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynembed.core.models import RetrievalSpec, ScoreThreshold, VectorSpec
from dynembed.quality.evaluation import GoldenSet, ThresholdPolicy, calibrate_threshold, top_hits
from dynembed.rebuild.generations import new_generation
from tests.harness import Harness

pytestmark = pytest.mark.unit

F1 = ThresholdPolicy()


def test_f1_threshold_by_hand() -> None:
    # GIVEN top hits (score, relevant) sorted: .9 R, .8 R, .7 -, .6 R, .5 -, .4 -
    hits = [(0.9, True), (0.8, True), (0.7, False), (0.6, True), (0.5, False), (0.4, False)]
    # keep >= .8: P 1, R 2/3, F1 .8; keep >= .6: P 3/4, R 1, F1 6/7 = .857; keep all: P .5, F1 .667
    threshold = calibrate_threshold(hits, F1)
    assert threshold is not None
    assert (threshold.value, threshold.precision, threshold.recall) == (0.6, 0.75, 1.0)
    assert threshold.f1 == pytest.approx(6 / 7)
    assert (threshold.queries, threshold.relevant_top1, threshold.method) == (6, 3, "f1")


def test_a_precision_target_takes_the_lowest_threshold_that_reaches_it() -> None:
    hits = [(0.9, True), (0.8, True), (0.7, False), (0.6, True), (0.5, False), (0.4, False)]
    # precision at .9: 1, .8: 1, .7: 2/3, .6: 3/4, .5: 3/5
    assert calibrate_threshold(hits, ThresholdPolicy(method="precision", target_precision=0.75)).value == 0.6  # type: ignore[union-attr]
    assert calibrate_threshold(hits, ThresholdPolicy(method="precision", target_precision=0.9)).value == 0.8  # type: ignore[union-attr]
    low = [(0.9, False), (0.8, True)]
    assert calibrate_threshold(low, ThresholdPolicy(method="precision", target_precision=0.9)) is None


def test_tied_scores_are_kept_or_dropped_together() -> None:
    threshold = calibrate_threshold([(0.5, True), (0.5, False), (0.4, True)], F1)
    assert threshold is not None and threshold.value == 0.4  # 0.5 alone would keep half a tie


def test_nothing_to_calibrate_on() -> None:
    assert calibrate_threshold([], F1) is None
    assert calibrate_threshold([(0.9, False), (0.1, False)], F1) is None


@given(st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.booleans()), min_size=1, max_size=30))
def test_the_f1_threshold_is_an_observed_score_with_the_best_f1(hits: list[tuple[float, bool]]) -> None:
    threshold = calibrate_threshold(hits, F1)
    relevant = sum(r for _, r in hits)
    if not relevant:
        assert threshold is None
        return
    assert threshold is not None and threshold.value in {s for s, _ in hits}

    def f1_at(t: float) -> float:
        kept = [r for s, r in hits if s >= t]
        tp = sum(kept)
        return 2 * tp / (len(kept) + relevant) if kept else 0.0

    best = max(f1_at(s) for s, _ in hits)
    assert threshold.f1 == pytest.approx(best) == pytest.approx(f1_at(threshold.value))


def test_top_hits_pairs_each_judged_query_with_its_first_hit() -> None:
    golden = GoldenSet(queries={"q1": "a", "q2": "b", "q3": "c"}, qrels={"q1": {"d1": 2}, "q2": {"d9": 1}})
    run = {"q1": [("d1", 0.9), ("d2", 0.5)], "q2": [("d3", 0.7)], "q3": [("d1", 0.1)]}
    assert top_hits(run, golden) == [(0.9, True), (0.7, False)]  # q3 is unjudged
    assert top_hits({"q1": []}, golden) == []


# ---- search responses ---------------------------------------------------------------------------


def test_search_returns_the_threshold_and_marks_each_hit_against_it() -> None:
    # GIVEN a serving generation with a calibrated threshold
    harness = Harness()
    harness.write("d1", body="alpha beta gamma delta " * 20)
    harness.write("d2", body="unrelated words entirely " * 20)
    harness.run()
    svc = harness.services()
    unmarked = svc.search("alpha beta", ["public"], generation="g1")
    assert unmarked.threshold is None and {r.below_threshold for r in unmarked.results} == {None}
    cut = (unmarked.results[0].score + unmarked.results[-1].score) / 2
    harness.registry.update(
        "g1",
        threshold=ScoreThreshold(
            value=cut, method="f1", precision=1, recall=1, f1=1, queries=2, relevant_top1=2
        ),
    )
    # WHEN it is searched
    response = svc.search("alpha beta", ["public"], generation="g1")
    # THEN the response carries the threshold and each hit says whether it is below it
    assert response.threshold == cut and response.retrieval == "vector" and response.precision == "float32"
    assert [r.below_threshold for r in response.results] == [r.score < cut for r in response.results]
    assert response.results[0].below_threshold is False and response.results[-1].below_threshold is True


def test_hybrid_search_on_the_fakes_never_returns_what_the_filter_denies() -> None:
    # GIVEN a hybrid generation and a doc whose text matches the query word for word but is staff-only
    harness = Harness()
    gen = new_generation(
        harness.embedder.spec,
        harness.chunker,
        "chunks",
        generation_id="g-hybrid",
        retrieval=RetrievalSpec(mode="hybrid", candidates=1),
        vectors=VectorSpec(precision="float16"),
    )
    harness.index.ensure_index(gen)
    harness.registry.put(gen.model_copy(update={"write_target": True}))
    harness.write("secret", body="zebracorn quasarpine velvetmoss " * 10, acl=["staff"])
    for n in range(5):
        harness.write(f"open{n}", body=f"ordinary public text number {n} " * 10)
    harness.run()
    svc = harness.services()
    # WHEN the reader and staff search the secret doc's words in the hybrid generation
    reader = svc.search("zebracorn quasarpine", ["reader"], generation="g-hybrid")
    staff = svc.search("zebracorn quasarpine", ["staff"], generation="g-hybrid")
    # THEN staff find it (first: BM25 and k-NN agree), the reader never does
    assert staff.results[0].doc_id == "secret" and staff.retrieval.startswith("hybrid")
    assert "secret" not in {r.doc_id for r in reader.results} and reader.results
