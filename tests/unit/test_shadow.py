"""Shadow comparison on fakes: the shadow function runs a live query on the candidate as its
caller and records overlap@10 and RBO against the active answer; the summary has the shape the
HTML report renders; the gate can require a minimum overlap."""

from __future__ import annotations

import json
import uuid

import pytest

from dynembed.core.config import Settings
from dynembed.core.models import ChunkerSpec, GenerationStatus
from dynembed.core.samples import QueryText, ShadowComparison, ShadowJob
from dynembed.quality.evaluation import GatePolicy, GoldenSet, compare, evaluate_run, gate
from dynembed.quality.html import render_report
from dynembed.quality.shadow import summarize_shadow
from dynembed.rebuild.generations import create, new_generation
from dynembed.wiring import Services
from dynembed_ops.local.lambda_runtime import LocalLambdaContext, load_handler
from tests.harness import Harness

pytestmark = pytest.mark.unit


def _two_generations(candidate_chunker: ChunkerSpec | None = None) -> tuple[Harness, Services]:
    """g1 serving; g2 building and a write target, so every doc reaches both."""
    h = Harness()
    g2 = new_generation(h.embedder.spec, candidate_chunker or h.chunker, h.index_prefix, generation_id="g2")
    create(h.registry, h.index, g2)
    h.registry.update("g2", write_target=True)
    for n in range(8):
        h.write(
            f"d{n}",
            title=f"doc {n}",
            body=f"shared words alpha beta, and its own word w{n} " * 3,
            acl=["eng"],
        )
    h.run()
    svc = h.services()
    svc.settings = Settings(index_alias=h.alias)
    return h, svc


def _job(svc: Services, text: str, principal: str = "eng") -> ShadowJob:
    response = svc.search(text, principal, k=10)
    return ShadowJob(
        candidate="g2",
        active="g1",
        text=text,
        principals=[principal],
        k=10,
        active_docs=list(dict.fromkeys(r.doc_id for r in response.results)),
        active_top_score=response.results[0].score if response.results else None,
    )


def _sqs_event(*bodies: str) -> dict[str, object]:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "h",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dynembed-shadow",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def test_the_shadow_function_compares_the_candidate_as_the_caller() -> None:
    # GIVEN an identical candidate, and a job for a query the caller may read docs for
    h, svc = _two_generations()
    job = _job(svc, "alpha beta w3")
    assert job.active_docs and job.active_docs[0] == "d3"
    # WHEN the shadow function handles it (and a malformed message beside it)
    result = load_handler("shadow")(
        _sqs_event(job.model_dump_json(), json.dumps({"text": "no candidate"})),
        LocalLambdaContext(function_name="dynembed-shadow"),
        svc=svc,
    )
    # THEN nothing failed (the malformed one is dropped) and the comparison is recorded
    assert result == {"batchItemFailures": []}
    (comparison,) = h.samples.compared
    assert (comparison.overlap, comparison.rbo) == (pytest.approx(1.0), pytest.approx(1.0))
    assert comparison.candidate_results > 0 and comparison.query.text is None
    assert h.telemetry.get("ShadowJobsMalformed") == 1


def test_the_candidate_is_searched_with_the_callers_access() -> None:
    # GIVEN a job whose caller may read nothing: the active answer was empty
    h, svc = _two_generations()
    job = _job(svc, "alpha beta", principal="stranger")
    assert job.active_docs == []
    # WHEN it is compared
    load_handler("shadow")(_sqs_event(job.model_dump_json()), LocalLambdaContext("dynembed-shadow"), svc=svc)
    # THEN the candidate found nothing either (access is not widened for shadow runs)
    (comparison,) = h.samples.compared
    assert comparison.candidate_results == 0 and comparison.overlap == 1.0


def test_a_promoted_or_failed_candidate_is_not_shadowed_any_more() -> None:
    h, svc = _two_generations()
    job = _job(svc, "alpha beta w1")
    h.registry.update("g2", status=GenerationStatus.FAILED, write_target=False)
    load_handler("shadow")(_sqs_event(job.model_dump_json()), LocalLambdaContext("dynembed-shadow"), svc=svc)
    assert h.samples.compared == []
    assert h.telemetry.get("ShadowJobsSkipped") == 1


def _comparison(text: str, overlap: float, rbo: float, at: float) -> ShadowComparison:
    return ShadowComparison(
        candidate="g2",
        active="g1",
        at=at,
        query=QueryText.of(text, keep=True),
        overlap=overlap,
        rbo=rbo,
        active_top_score=0.8,
        candidate_top_score=0.6,
        active_results=10,
        candidate_results=10,
    )


def test_summary_has_the_html_shape_and_lists_the_worst_queries_once() -> None:
    comparisons = [
        _comparison("a", 1.0, 1.0, 1),
        _comparison("b", 0.2, 0.3, 2),
        _comparison("b", 0.6, 0.5, 3),
        _comparison("c", 0.5, 0.4, 4),
    ]
    shadow = summarize_shadow("g2", comparisons).report()
    assert shadow["generation_id"] == "g2" and shadow["queries"] == 4
    assert shadow["overlap@10"] == pytest.approx((1.0 + 0.2 + 0.6 + 0.5) / 4)
    assert shadow["rbo"] == pytest.approx((1.0 + 0.3 + 0.5 + 0.4) / 4)
    assert shadow["active_scores"] == [0.8] * 4 and shadow["candidate_scores"] == [0.6] * 4
    assert [d["query"] for d in shadow["disagreements"]] == ["b", "c", "a"]
    assert shadow["disagreements"][0] == {"query": "b", "overlap": 0.2, "rbo": 0.3}
    # AND the HTML report draws it
    page = render_report({"shadow": shadow}, title="t")
    assert 'data-chart="shadow-overlap"' in page and 'data-chart="shadow-disagreements"' in page


GOLDEN = GoldenSet(queries={"q": "x"}, qrels={"q": {"d": 1}})


def _passing_comparison() -> object:
    result = evaluate_run({"q": ["d"]}, GOLDEN)
    return compare(result, result)


def test_the_gate_reports_shadow_only_unless_a_minimum_is_set() -> None:
    low = summarize_shadow("g2", [_comparison(str(n), 0.3, 0.3, n) for n in range(30)])
    cmp = _passing_comparison()
    assert gate(cmp, {}, GatePolicy(), shadow=low).passed  # type: ignore[arg-type]
    decision = gate(cmp, {}, GatePolicy(min_shadow_overlap=0.5), shadow=low)  # type: ignore[arg-type]
    assert not decision.passed
    assert decision.reasons == ["shadow overlap@10 0.300 < min 0.500 on 30 live queries"]
    high = summarize_shadow("g2", [_comparison(str(n), 0.9, 0.9, n) for n in range(30)])
    assert gate(cmp, {}, GatePolicy(min_shadow_overlap=0.5), shadow=high).passed  # type: ignore[arg-type]


def test_a_minimum_overlap_without_enough_shadow_traffic_fails_closed() -> None:
    few = summarize_shadow("g2", [_comparison(str(n), 1.0, 1.0, n) for n in range(3)])
    decision = gate(_passing_comparison(), {}, GatePolicy(min_shadow_overlap=0.5), shadow=few)  # type: ignore[arg-type]
    assert decision.reasons == ["shadow: 3 live queries compared, 20 needed for min_shadow_overlap"]
    assert not gate(_passing_comparison(), {}, GatePolicy(min_shadow_overlap=0.5)).passed  # type: ignore[arg-type]


def test_nothing_is_compared_while_the_candidates_backfill_runs() -> None:
    # GIVEN a candidate whose backfill has segments left (its index is half filled)
    from dynembed.rebuild.progress import BackfillProgress

    h, svc = _two_generations()
    h.registry.update("g2", backfill=BackfillProgress.fresh(2, 10).record())
    job = _job(svc, "alpha beta w1")
    # WHEN a shadow job arrives
    load_handler("shadow")(_sqs_event(job.model_dump_json()), LocalLambdaContext("dynembed-shadow"), svc=svc)
    # THEN it is skipped: the comparison would only measure how much is not indexed yet
    assert h.samples.compared == []
    assert h.telemetry.get("ShadowJobsSkipped") == 1
