"""dynembed's metrics against ir-measures (pytrec_eval, i.e. trec_eval; msmarco for RR@k) to 1e-9.

ir-measures takes scored runs and breaks score ties by doc id, so every ranking is given
strictly decreasing scores: the rank order is then the only order. Runs may repeat a doc (as
chunk hits do); ir-measures cannot express that, so it gets the ranking with each doc at its
first position, which is what dynembed is meant to score.

The one documented difference: a query whose only judgments are grade 0 scores 0 in
ir-measures and counts in its mean; dynembed leaves it out of the mean.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import ir_measures
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ir_measures import RR, R, nDCG

from dynembed.quality.evaluation import (
    RETRIEVAL_METRICS,
    EvaluationResult,
    GoldenSet,
    evaluate_run,
    load_golden_set_dir,
    rank_docs,
)

pytestmark = pytest.mark.unit

FAQ_DIR = Path(__file__).resolve().parents[2] / "data" / "python-faq"
TOLERANCE = 1e-9


def scored(run: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """Strictly decreasing scores in rank order, so trec_eval's tie-breaking never applies."""
    return {q: {doc: float(-rank) for rank, doc in enumerate(rank_docs(docs))} for q, docs in run.items()}


def reference(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Sequence[str]], k: int
) -> dict[str, dict[str, float]]:
    """Per-query nDCG@k, R@k, RR@k from ir-measures; RR@k two ways that must agree."""
    qrels = {q: dict(j) for q, j in qrels.items()}
    per_metric: dict[str, dict[str, float]] = {"ndcg": {}, "recall": {}, "mrr": {}, "rr_trec": {}}
    names = {nDCG @ k: "ndcg", R @ k: "recall"}
    for metric in ir_measures.pytrec_eval.evaluator(list(names), qrels).iter_calc(scored(run)):
        per_metric[names[metric.measure]][metric.query_id] = metric.value
    for metric in ir_measures.msmarco.evaluator([RR @ k], qrels).iter_calc(scored(run)):
        per_metric["mrr"][metric.query_id] = metric.value
    # trec_eval's recip_rank has no cutoff: give it the top k only.
    top_k = {q: docs[:k] for q, docs in ((q, rank_docs(d)) for q, d in run.items())}
    for metric in ir_measures.pytrec_eval.evaluator([RR], qrels).iter_calc(scored(top_k)):
        per_metric["rr_trec"][metric.query_id] = metric.value
    return per_metric


def reference_means(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Sequence[str]], k: int
) -> dict[str, float]:
    means = ir_measures.calc_aggregate([nDCG @ k, R @ k, RR @ k], dict(qrels), scored(run))
    return {"ndcg": means[nDCG @ k], "recall": means[R @ k], "mrr": means[RR @ k]}


def assert_matches_ir_measures(golden: GoldenSet, run: Mapping[str, Sequence[str]], k: int) -> None:
    # WHEN both score the same run
    ours = evaluate_run(run, golden, k=k)
    theirs = reference(golden.qrels, run, k)
    # THEN every judged query agrees on every metric
    for metric in RETRIEVAL_METRICS:
        ours_per_query = ours.per_query_values(metric)
        for query_id in golden.judged_query_ids:
            assert ours_per_query[query_id] == pytest.approx(theirs[metric][query_id], abs=TOLERANCE), (
                metric,
                query_id,
            )
    assert theirs["rr_trec"] == pytest.approx(theirs["mrr"], abs=TOLERANCE)
    # AND queries with only grade-0 judgments score 0 in ir-measures (dynembed leaves them out)
    for query_id in ours.excluded_queries:
        if query_id in golden.qrels:
            assert theirs["ndcg"][query_id] == theirs["recall"][query_id] == theirs["mrr"][query_id] == 0.0
    assert_means(ours, golden, run, k)


def assert_means(ours: EvaluationResult, golden: GoldenSet, run: Mapping[str, Sequence[str]], k: int) -> None:
    # THEN on the judged queries the means are ir-measures' means
    judged_qrels = {q: golden.qrels[q] for q in golden.judged_query_ids}
    same_queries = reference_means(judged_qrels, run, k)
    # AND on the full qrels ir-measures' mean differs only by counting grade-0-only queries as 0
    all_queries = reference_means(golden.qrels, run, k)
    scale = len(golden.judged_query_ids) / len(golden.qrels)
    for metric in RETRIEVAL_METRICS:
        assert ours.mean(metric) == pytest.approx(same_queries[metric], abs=TOLERANCE)
        assert ours.mean(metric) * scale == pytest.approx(all_queries[metric], abs=TOLERANCE)


# ---------------------------------------------------------------------- (a) the shipped qrels


@pytest.fixture(scope="module")
def faq() -> tuple[GoldenSet, list[str]]:
    golden = load_golden_set_dir(FAQ_DIR)
    with (FAQ_DIR / "corpus.jsonl").open(encoding="utf-8") as corpus:
        doc_ids = [json.loads(line)["doc_id"] for line in corpus]
    return golden, doc_ids


def random_faq_run(golden: GoldenSet, doc_ids: list[str], seed: int) -> dict[str, list[str]]:
    """Chunk-like runs: random docs with repeats, the relevant doc often somewhere in the top 20,
    some queries unanswered or empty, one query the golden set does not know."""
    rnd = random.Random(seed)
    run: dict[str, list[str]] = {"not-a-query": rnd.sample(doc_ids, 5)}
    for query_id in golden.queries:
        if rnd.random() < 0.1:
            continue
        docs = rnd.sample(doc_ids, rnd.randint(0, 25))
        if rnd.random() < 0.6:
            docs.insert(rnd.randint(0, min(20, len(docs))), next(iter(golden.qrels[query_id])))
        if docs and rnd.random() < 0.3:
            docs.insert(rnd.randint(0, len(docs)), rnd.choice(docs))
        run[query_id] = docs
    return run


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 10, 20])
def test_matches_ir_measures_on_the_python_faq_qrels(
    faq: tuple[GoldenSet, list[str]], seed: int, k: int
) -> None:
    # GIVEN the shipped qrels and a seeded random run over the corpus doc ids
    golden, doc_ids = faq
    run = random_faq_run(golden, doc_ids, seed)
    # THEN dynembed and ir-measures agree
    assert_matches_ir_measures(golden, run, k)


def test_faq_run_is_not_trivial(faq: tuple[GoldenSet, list[str]]) -> None:
    # GIVEN the seeded run used above: it must exercise hits, misses and partial scores
    golden, doc_ids = faq
    result = evaluate_run(random_faq_run(golden, doc_ids, 0), golden, k=10)
    values = set(result.per_query_values("ndcg").values())
    assert 0.0 in values and 1.0 in values and len(values) > 3
    assert result.queries_without_results


# ------------------------------------------------------------- (b) generated graded qrels


@st.composite
def graded_golden_and_run(draw: st.DrawFn) -> tuple[GoldenSet, dict[str, list[str]], int]:
    docs = [f"d{i}" for i in range(draw(st.integers(1, 10)))]
    queries = {f"q{i}": f"query {i}" for i in range(draw(st.integers(1, 5)))}
    qrels: dict[str, dict[str, int]] = {}
    for query_id in queries:
        judged = draw(st.lists(st.sampled_from(docs), unique=True, max_size=len(docs)))
        if judged:
            qrels[query_id] = {doc: draw(st.integers(0, 4)) for doc in judged}
    assume(any(grade >= 1 for judgments in qrels.values() for grade in judgments.values()))
    run = {
        query_id: draw(st.lists(st.sampled_from([*docs, "unjudged"]), max_size=14))
        for query_id in queries
        if draw(st.booleans()) or query_id not in qrels
    }
    k = draw(st.sampled_from([1, 2, 3, 5, 10]))
    return GoldenSet(queries=queries, qrels=qrels), run, k


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(graded_golden_and_run())
def test_matches_ir_measures_on_generated_graded_qrels(
    case: tuple[GoldenSet, dict[str, list[str]], int],
) -> None:
    # GIVEN small graded qrels (grades 0-4, some queries unjudged or all-zero) and runs with repeats
    golden, run, k = case
    # THEN dynembed and ir-measures agree
    assert_matches_ir_measures(golden, run, k)
