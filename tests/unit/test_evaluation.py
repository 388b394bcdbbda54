"""Evaluation: hand-computed metrics, golden-set loading errors, comparison, gate and report."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from dynembed.core.errors import ConfigError
from dynembed.core.models import ChunkerSpec, Generation, ModelSpec
from dynembed.quality.evaluation import (
    EvaluationResult,
    GatePolicy,
    GoldenSet,
    Outcome,
    QueryMetrics,
    compare,
    evaluate_run,
    gate,
    latency_summary,
    load_golden_set,
    load_golden_set_dir,
    ndcg_at_k,
    rank_docs,
    recall_at_k,
    reciprocal_rank_at_k,
    run_golden_set,
)
from dynembed.quality.report import (
    Coverage,
    EmbeddingUsage,
    EvaluationReport,
    GenerationSummary,
    render_markdown_report,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def discount(rank: int) -> float:
    return math.log2(rank + 1)


def result(k: int = 10, **per_query: tuple[float, float, float]) -> EvaluationResult:
    """An EvaluationResult from (ndcg, recall, mrr) per query; means computed by hand here."""
    metrics = {q: QueryMetrics(ndcg=n, recall=r, mrr=m) for q, (n, r, m) in per_query.items()}
    count = len(metrics)
    return EvaluationResult(
        k=k,
        ndcg=sum(m.ndcg for m in metrics.values()) / count,
        recall=sum(m.recall for m in metrics.values()) / count,
        mrr=sum(m.mrr for m in metrics.values()) / count,
        per_query=metrics,
    )


# ------------------------------------------------------------------------------------ metrics


def test_ndcg_uses_linear_graded_gains_and_log2_discount() -> None:
    # GIVEN grades a=3, b=2, c=0 and a ranking that puts an unjudged doc first
    judgments = {"a": 3, "b": 2, "c": 0}
    # WHEN nDCG@10 is computed
    value = ndcg_at_k(["x", "b", "a", "c"], judgments, 10)
    # THEN DCG = 2/log2(3) + 3/log2(4), ideal = 3/log2(2) + 2/log2(3)
    expected = (2 / discount(2) + 3 / discount(3)) / (3 / discount(1) + 2 / discount(2))
    assert value == pytest.approx(expected, abs=1e-12)
    assert value == pytest.approx(0.648041, abs=1e-6)


def test_ndcg_cuts_both_the_ranking_and_the_ideal_at_k() -> None:
    # GIVEN three equally relevant docs and k=2
    judgments = {"a": 1, "b": 1, "c": 1}
    # WHEN two of them fill the top 2, or the only hit sits at rank 3
    perfect = ndcg_at_k(["a", "b", "c"], judgments, 2)
    beyond_k = ndcg_at_k(["x", "y", "a"], judgments, 2)
    # THEN the ideal is also cut at 2 (a perfect top 2 scores 1) and rank 3 earns nothing
    assert perfect == pytest.approx(1.0)
    assert beyond_k == 0.0


def test_ndcg_is_zero_without_relevant_judgments() -> None:
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0


def test_recall_divides_by_every_relevant_doc_not_by_k() -> None:
    # GIVEN three relevant docs (grade 2, 1, 1) and one judged non-relevant
    judgments = {"a": 2, "b": 1, "c": 1, "n": 0}
    # WHEN the top 2 hold two relevant docs and the judged non-relevant one sits at rank 3
    value = recall_at_k(["a", "b", "n", "c"], judgments, 2)
    # THEN recall is 2 of 3, like trec_eval's recall_k (not 2 of min(k, 3))
    assert value == pytest.approx(2 / 3)


def test_reciprocal_rank_takes_the_first_relevant_doc_within_k() -> None:
    judgments = {"a": 1, "n": 0}
    # GIVEN the relevant doc at rank 3 behind a judged non-relevant one
    ranking = ["x", "n", "a"]
    # THEN RR@10 is 1/3, and RR@2 is 0 since the doc is past the cutoff
    assert reciprocal_rank_at_k(ranking, judgments, 10) == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k(ranking, judgments, 2) == 0.0


def test_rank_docs_keeps_each_doc_at_its_best_chunk() -> None:
    # GIVEN chunk hits where d1 has chunks at ranks 1 and 3
    hits = ["d1", "d2", "d1", "d3", "d2"]
    # THEN the doc ranking is by first occurrence
    assert rank_docs(hits) == ["d1", "d2", "d3"]


def golden_three() -> GoldenSet:
    return GoldenSet(
        queries={"q1": "one", "q2": "two", "q3": "three", "q4": "unjudged"},
        qrels={"q1": {"a": 1}, "q2": {"b": 2, "c": 1}, "q3": {"d": 1}, "q4": {"e": 0}},
    )


def test_evaluate_run_scores_missing_queries_zero_and_excludes_unjudged_ones() -> None:
    # GIVEN a golden set with 3 judged queries and one whose only judgment is grade 0
    golden = golden_three()
    # WHEN the run answers q1 at rank 1 (via duplicated chunks), q2 with c at rank 2, nothing for
    # q3, and also holds a query the golden set does not know
    run = {"q1": ["a", "a", "z"], "q2": ["x", "c"], "q4": ["e"], "stranger": ["a"]}
    res = evaluate_run(run, golden, k=10)
    # THEN means are over the 3 judged queries, q3 counts as 0, q4 and the stranger are left out
    q2_ndcg = (1 / discount(2)) / (2 / discount(1) + 1 / discount(2))
    assert set(res.per_query) == {"q1", "q2", "q3"}
    assert res.per_query["q2"].ndcg == pytest.approx(q2_ndcg)
    assert res.ndcg == pytest.approx((1 + q2_ndcg + 0) / 3)
    assert res.recall == pytest.approx((1 + 0.5 + 0) / 3)
    assert res.mrr == pytest.approx((1 + 0.5 + 0) / 3)
    assert res.queries_without_results == ["q3"]
    assert res.excluded_queries == ["q4"]


def test_evaluate_run_rejects_k_below_one() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        evaluate_run({}, golden_three(), k=0)


def test_run_golden_set_runs_judged_queries_and_ranks_docs_by_best_chunk() -> None:
    # GIVEN a search that returns chunk-level doc ids with repeats
    asked: list[str] = []

    def search(text: str) -> list[str]:
        asked.append(text)
        return ["a", "a", "b"]

    # WHEN the golden set is run
    run, latencies = run_golden_set(golden_three(), search)
    # THEN only judged queries are asked, each once, with deduplicated docs and one latency each
    assert asked == ["one", "two", "three"]
    assert run == {"q1": ["a", "b"], "q2": ["a", "b"], "q3": ["a", "b"]}
    assert len(latencies) == 3 and all(ms >= 0 for ms in latencies)


def test_latency_summary_uses_linear_percentiles() -> None:
    # GIVEN 1..100 ms
    summary = latency_summary([float(v) for v in range(1, 101)])
    # THEN p50 sits between 50 and 51, p95 at 95.05 (linear interpolation), mean 50.5
    assert summary == pytest.approx({"p50": 50.5, "p95": 95.05, "mean": 50.5})
    assert latency_summary([7.0]) == {"p50": 7.0, "p95": 7.0, "mean": 7.0}


@pytest.mark.parametrize("samples", [[], [1.0, -2.0], [float("nan")]])
def test_latency_summary_rejects_empty_or_invalid_samples(samples: list[float]) -> None:
    with pytest.raises(ValueError):
        latency_summary(samples)


# ------------------------------------------------------------------------------------ loading


def write_golden(tmp_path: Path, queries: str, qrels: str) -> tuple[Path, Path]:
    queries_path, qrels_path = tmp_path / "queries.jsonl", tmp_path / "qrels.tsv"
    queries_path.write_text(queries, encoding="utf-8")
    qrels_path.write_text(qrels, encoding="utf-8")
    return queries_path, qrels_path


GOOD_QUERIES = '{"query_id": "q1", "text": "first"}\n{"query_id": "q2", "text": "second"}\n'


def test_loads_the_shipped_python_faq_golden_set() -> None:
    # WHEN the shipped golden set is loaded
    golden = load_golden_set_dir(REPO / "data" / "python-faq")
    # THEN all 177 queries are judged, with one relevant doc each
    assert golden.name == "python-faq"
    assert len(golden.queries) == len(golden.judged_query_ids) == 177
    assert all(list(j.values()) == [1] for j in golden.qrels.values())


def test_loads_graded_qrels_skipping_blank_lines_and_a_bom(tmp_path: Path) -> None:
    # GIVEN a BOM, blank lines and graded judgments
    paths = write_golden(tmp_path, "\ufeff" + GOOD_QUERIES + "\n", "q1\td1\t2\n\nq1\td2\t0\nq2\td3\t1\n")
    # WHEN loaded
    golden = load_golden_set(*paths, name="tiny")
    # THEN
    assert golden.queries == {"q1": "first", "q2": "second"}
    assert golden.qrels == {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}}
    assert golden.name == "tiny"


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        (GOOD_QUERIES + "{not json\n", r"queries\.jsonl:3: not valid JSON"),
        (GOOD_QUERIES + '["q3", "x"]\n', r"queries\.jsonl:3: expected an object"),
        (GOOD_QUERIES + '{"text": "x"}\n', r"queries\.jsonl:3: query_id must be a non-empty string"),
        (GOOD_QUERIES + '{"query_id": 3, "text": "x"}\n', r"queries\.jsonl:3: query_id must be"),
        (GOOD_QUERIES + '{"query_id": "q3", "text": " "}\n', r"queries\.jsonl:3: text of query 'q3'"),
        (
            GOOD_QUERIES + '\n{"query_id": "q1", "text": "again"}\n',
            r"queries\.jsonl:4: duplicate query_id 'q1' \(first on line 1\)",
        ),
        ("\n\n", r"queries\.jsonl: no queries"),
    ],
)
def test_malformed_queries_name_file_and_line(tmp_path: Path, queries: str, message: str) -> None:
    # GIVEN a queries file with one defect (blank lines still count for line numbers)
    paths = write_golden(tmp_path, queries, "q1\td1\t1\n")
    # WHEN loaded THEN the error names the file and line
    with pytest.raises(ConfigError, match=message):
        load_golden_set(*paths)


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ("q1\td1\t1\nq1 d2 1\n", r"qrels\.tsv:2: expected 3 tab-separated fields .* got 1"),
        ("q1\td1\t1\tX\n", r"qrels\.tsv:1: expected 3 tab-separated fields .* got 4"),
        ("query_id\tdoc_id\trelevance\n", r"qrels\.tsv:1: relevance must be an integer, got 'relevance'"),
        ("q1\td1\t0.5\n", r"qrels\.tsv:1: relevance must be an integer"),
        ("q1\td1\t1\nq2\td2\t-1\n", r"qrels\.tsv:2: relevance must be >= 0, got -1"),
        ("q1\t\t1\n", r"qrels\.tsv:1: empty query_id or doc_id"),
        ("q1\td1\t1\n\nq9\td2\t1\n", r"qrels\.tsv:3: query 'q9' is not in the queries file"),
        ("q1\td1\t1\nq1\td1\t2\n", r"qrels\.tsv:2: duplicate judgment for q1/d1 \(first on line 1\)"),
        ("\n", r"qrels\.tsv: no judgments"),
        ("q1\td1\t0\n", r"no query has a relevant document"),
    ],
)
def test_malformed_qrels_name_file_and_line(tmp_path: Path, qrels: str, message: str) -> None:
    # GIVEN valid queries and a qrels file with one defect
    paths = write_golden(tmp_path, GOOD_QUERIES, qrels)
    # WHEN loaded THEN the error names the file and line
    with pytest.raises(ConfigError, match=message):
        load_golden_set(*paths)


def test_missing_file_is_named(tmp_path: Path) -> None:
    queries_path, _ = write_golden(tmp_path, GOOD_QUERIES, "q1\td1\t1\n")
    with pytest.raises(ConfigError, match=r"nope\.tsv: file not found"):
        load_golden_set(queries_path, tmp_path / "nope.tsv")


def test_queries_without_relevant_docs_are_kept_but_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN q2 has no qrels line
    paths = write_golden(tmp_path, GOOD_QUERIES, "q1\td1\t1\n")
    # WHEN loaded
    with caplog.at_level(logging.WARNING, logger="dynembed.quality.evaluation"):
        golden = load_golden_set(*paths)
    # THEN q2 is kept as a query but not scored, and the warning says so
    assert golden.judged_query_ids == ("q1",)
    assert golden.unjudged_query_ids == ("q2",)
    assert "1 of 2 queries have no relevant document" in caplog.text


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ({"q9": {"d": 1}}, "qrels name unknown queries"),
        ({"q1": {"d": -1}}, "must be an int >= 0"),
        ({"q1": {"d": True}}, "must be an int >= 0"),
    ],
)
def test_golden_set_built_in_code_is_validated_too(qrels: dict[str, dict[str, int]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GoldenSet(queries={"q1": "x"}, qrels=qrels)


# ---------------------------------------------------------------------------------- comparison


def test_compare_reports_deltas_and_per_query_outcomes_worst_first() -> None:
    # GIVEN a candidate that wins q1, loses q2 and ties q3 on nDCG
    candidate = result(q1=(0.9, 1.0, 1.0), q2=(0.2, 0.5, 0.25), q3=(0.5, 1.0, 0.5))
    baseline = result(q1=(0.5, 1.0, 0.5), q2=(0.6, 1.0, 1.0), q3=(0.5, 1.0, 0.5))
    # WHEN compared
    comparison = compare(candidate, baseline)
    # THEN deltas are candidate - baseline means, and the table starts with the biggest loss
    assert comparison.deltas == pytest.approx({"ndcg": 0.0, "recall": -0.5 / 3, "mrr": -0.25 / 3})
    assert (comparison.wins, comparison.losses, comparison.ties) == (["q1"], ["q2"], ["q3"])
    assert [r.query_id for r in comparison.per_query] == ["q2", "q3", "q1"]
    assert comparison.per_query[0].delta == pytest.approx(-0.4)
    assert comparison.per_query[0].outcome is Outcome.LOSS


def test_compare_without_baseline_has_no_deltas() -> None:
    comparison = compare(result(q1=(0.9, 1.0, 1.0), q2=(0.1, 1.0, 0.1)), None)
    assert comparison.deltas is None
    assert [r.query_id for r in comparison.per_query] == ["q2", "q1"]
    assert all(r.outcome is None for r in comparison.per_query)


def test_compare_refuses_different_k_or_query_sets() -> None:
    with pytest.raises(ValueError, match="@10 with @5"):
        compare(result(q1=(1, 1, 1)), result(k=5, q1=(1, 1, 1)))
    with pytest.raises(ValueError, match="different query sets"):
        compare(result(q1=(1, 1, 1)), result(q2=(1, 1, 1)))


# ------------------------------------------------------------------------------------- gate


def test_gate_passes_a_candidate_that_meets_every_check() -> None:
    comparison = compare(result(q1=(0.8, 0.9, 0.7)), result(q1=(0.79, 0.9, 0.72)))
    decision = gate(comparison, {"deleted_docs_absent": True}, GatePolicy(min_ndcg=0.5))
    assert decision.passed and decision.reasons == []


def test_gate_names_every_failed_check_with_numbers() -> None:
    # GIVEN a candidate below the nDCG minimum whose recall dropped 0.081 vs the active one
    candidate = result(q1=(0.412, 0.819, 0.6))
    baseline = result(q1=(0.4, 0.9, 0.6))
    policy = GatePolicy(min_ndcg=0.5, min_mrr=0.7)
    # WHEN gated with one failing probe
    probes = {"acl_respected": True, "deleted_docs_absent": False}
    decision = gate(compare(candidate, baseline), probes, policy)
    # THEN each failure is one reason, in the words ops read
    assert not decision.passed
    assert decision.reasons == [
        "ndcg@10 0.412 < min 0.500",
        "mrr@10 0.600 < min 0.700",
        "recall@10 dropped 0.081 > 0.020 vs active",
        "probe deleted_docs_absent failed",
    ]


def test_gate_allows_a_drop_of_exactly_max_regression_despite_float_noise() -> None:
    # GIVEN 0.5 - 0.48, which is 0.020000000000000018 in floats
    comparison = compare(result(q1=(0.48, 1, 1)), result(q1=(0.5, 1, 1)))
    # THEN the drop counts as 0.02 and passes
    assert gate(comparison, {}, GatePolicy()).passed


def test_gate_allows_a_smaller_drop_on_a_weak_baseline() -> None:
    # GIVEN a weak active generation (nDCG 0.094) and a candidate worse on every metric by less
    # than 0.02 each, which is a fifth of the baseline (an issue 12 probe: binary vectors)
    comparison = compare(result(q1=(0.076, 0.159, 0.051)), result(q1=(0.094, 0.170, 0.071)))
    # THEN the relative allowance (10% of each baseline mean) rejects it, naming the share
    decision = gate(comparison, {}, GatePolicy())
    assert not decision.passed
    assert decision.reasons == [
        "ndcg@10 dropped 0.018 > 0.009 vs active (10% of its 0.094)",
        "mrr@10 dropped 0.020 > 0.007 vs active (10% of its 0.071)",
    ]
    # AND on a strong baseline the absolute allowance still binds: the same drops pass
    strong = compare(result(q1=(0.662, 0.889, 0.631)), result(q1=(0.68, 0.9, 0.651)))
    assert gate(strong, {}, GatePolicy()).passed
    # AND a policy can loosen the share
    assert gate(comparison, {}, GatePolicy(max_relative_regression=1.0)).passed


def test_gate_shows_more_decimals_when_three_would_hide_the_failure() -> None:
    # GIVEN a drop of 0.0204, which prints as 0.020 at three decimals
    comparison = compare(result(q1=(0.4796, 1, 1)), result(q1=(0.5, 1, 1)))
    # THEN the reason prints enough digits to tell the values apart
    assert gate(comparison, {}, GatePolicy()).reasons == ["ndcg@10 dropped 0.0204 > 0.0200 vs active"]


def test_gate_probe_policy() -> None:
    comparison = compare(result(q1=(1, 1, 1)), None)
    # WHEN probes are not required, a failed probe does not block
    assert gate(comparison, {"p": False}, GatePolicy(require_probes=False)).passed
    # WHEN a probe is required by name but never ran, that blocks
    decision = gate(comparison, {}, GatePolicy(required_probes=("deleted_docs_absent",)))
    assert decision.reasons == ["probe deleted_docs_absent missing"]


def test_gate_without_active_generation_skips_regression_and_says_so() -> None:
    decision = gate(compare(result(q1=(0.1, 0.1, 0.1)), None), {}, GatePolicy(max_regression=0.0))
    assert decision.passed
    assert decision.notes == ["no active generation: regression checks skipped"]


def test_gate_policy_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="min_ndgc"):
        GatePolicy.model_validate({"min_ndgc": 0.5})


# ------------------------------------------------------------------------------------ report


def generation(gen_id: str, model: str) -> Generation:
    return Generation(
        id=gen_id,
        index_name=f"dynembed-chunks-{gen_id}",
        model=ModelSpec(provider="local", name=model, dimension=384),
        chunker=ChunkerSpec(),
    )


def build_report(with_baseline: bool = True) -> EvaluationReport:
    golden = GoldenSet(
        queries={"q1": "How do I | pipe?", "q2": "x " * 100, "q3": "tie"},
        qrels={"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}},
        name="faq",
    )
    candidate = result(q1=(1.0, 1.0, 1.0), q2=(0.25, 1.0, 0.2), q3=(0.5, 1.0, 0.5))
    baseline = result(q1=(0.5, 1.0, 0.5), q2=(0.75, 1.0, 0.75), q3=(0.5, 1.0, 0.5))
    comparison = compare(candidate, baseline if with_baseline else None)
    policy = GatePolicy(min_ndcg=0.7)
    probes = {"deleted_docs_absent": False, "acl_respected": True}
    return EvaluationReport.build(
        golden=golden,
        comparison=comparison,
        decision=gate(comparison, probes, policy),
        policy=policy,
        candidate=generation("gen-b", "minilm"),
        baseline=generation("gen-a", "static") if with_baseline else None,
        probes=probes,
        coverage=Coverage(docs_indexed=1498, docs_in_source=1500),
        latency_ms=latency_summary([10.0, 20.0, 30.0]),
        latency_samples=3,
        embeddings=EmbeddingUsage(reused=1200, computed=300),
    )


def test_report_markdown_holds_the_key_figures() -> None:
    # GIVEN a report of a failed gate against an active generation
    report = build_report()
    # WHEN rendered
    markdown = report.to_markdown()
    # THEN ids, models, metrics, deltas, reasons, probes, coverage, latency and reuse are there
    assert "# Evaluation of gen-b vs gen-a: gate FAILED" in markdown
    assert "`faq`: 3 judged queries (0 without results, 0 unjudged left out), k=10" in markdown
    assert "`local/minilm@1:384`" in markdown and "`local/static@1:384`" in markdown
    assert "| nDCG@10 | 0.583 | 0.583 | +0.000 |" in markdown
    assert "| MRR@10 | 0.567 | 0.583 | -0.017 |" in markdown
    assert "- ndcg@10 0.583 < min 0.700" in markdown
    assert "- probe deleted_docs_absent failed" in markdown
    assert "| deleted_docs_absent | FAIL |" in markdown and "| acl_respected | pass |" in markdown
    assert "1,498 of 1,500 source docs indexed (99.9%)" in markdown
    assert "p50 20.0 ms, p95 29.0 ms, mean 20.0 ms" in markdown
    assert "1,200 reused, 300 computed (80.0% reused)" in markdown
    assert "1 wins, 1 losses, 1 ties" in markdown


def test_report_per_query_table_is_sorted_by_delta_escaped_and_truncated() -> None:
    markdown = build_report().to_markdown()
    rows = [line for line in markdown.splitlines() if line.startswith(("| q1 ", "| q2 ", "| q3 "))]
    # THEN every query is shown, worst delta first, pipes escaped, long text cut with an ellipsis
    assert [row.split(" | ")[0] for row in rows] == ["| q2", "| q3", "| q1"]
    assert rows[0].endswith("| 0.250 | 0.750 | -0.500 | loss |")
    assert "How do I \\| pipe?" in rows[2]
    assert "…" in rows[0] and len(rows[0].split(" | ")[1]) == 80


def test_report_survives_a_json_round_trip_and_renders_from_a_dict() -> None:
    # GIVEN the report as the registry stores it
    report = build_report()
    stored = json.loads(json.dumps(report.model_dump(mode="json")))
    # WHEN rendered from the plain dict
    # THEN the Markdown is the same as from the model
    assert render_markdown_report(stored) == report.to_markdown()
    assert stored["gate_passed"] is False and stored["per_query"][0]["outcome"] == "loss"


def test_report_without_baseline_renders_candidate_only() -> None:
    markdown = build_report(with_baseline=False).to_markdown()
    assert "# Evaluation of gen-b: gate FAILED" in markdown
    assert "| nDCG@10 | 0.583 |" in markdown
    assert "note: no active generation: regression checks skipped" in markdown
    assert "(no active generation)" in markdown


def test_report_exposes_cloudwatch_metrics_in_domain_names() -> None:
    metrics = build_report().cloudwatch_metrics()
    expected = {"EvalNdcgAt10": 0.5833333, "EvalRecallAt10": 1.0, "EvalMrrAt10": 0.5666667}
    assert metrics == pytest.approx(expected)


def test_report_at_another_k_is_not_published_as_at10() -> None:
    report = build_report().model_copy(update={"k": 5})
    assert set(report.cloudwatch_metrics()) == {"EvalNdcgAt5", "EvalRecallAt5", "EvalMrrAt5"}


def test_generation_summary_takes_model_id_and_chunker_version() -> None:
    summary = GenerationSummary.of(generation("gen-a", "static"))
    assert summary.model_id == "local/static@1:384"
    assert summary.chunker_version == ChunkerSpec().version


@pytest.mark.unit
def test_gate_refuses_a_blind_promotion_when_no_query_found_anything() -> None:
    # GIVEN a candidate and an active generation that both found nothing (e.g. an eval principal
    # that may read no doc): no regression, no minimum broken, yet nothing was measured
    golden = GoldenSet(queries={"q1": "a", "q2": "b"}, qrels={"q1": {"d1": 1}, "q2": {"d2": 1}})
    empty = evaluate_run({}, golden, k=10)
    decision = gate(compare(empty, empty), {}, GatePolicy())
    # THEN the gate fails and says why
    assert not decision.passed
    assert any("no query found a relevant doc" in reason for reason in decision.reasons)
