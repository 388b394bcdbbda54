"""The canary on in-memory fakes: the real measurement and probes of the rebuild gate, run
again on the serving generation and compared with its figures at promotion."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from dynembed.core.config import METRICS, THRESHOLDS, TUNING
from dynembed.core.errors import ConfigError, DynembedError
from dynembed.core.models import SENTINEL_DOC_ID, GenerationStatus
from dynembed.embedders.hashing import hash_vector
from dynembed.quality import canary
from dynembed.quality.canary import CanaryRequest, canary_html_report, run_canary
from dynembed.quality.html import render_canary_report
from dynembed.quality.measure import measure
from dynembed.rebuild.inputs import EvalSetInput
from dynembed_ops.ops import monitor_alarms, monitor_values
from tests.events import load_event
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit

TOPICS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")


def _golden(folder: Path) -> EvalSetInput:
    queries = [{"query_id": f"q-{t}", "text": f"{t}3 {t}7 {t}12 {t}20"} for t in TOPICS]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (folder / "qrels.tsv").write_text("\n".join(f"q-{t}\tdoc-{t}\t1" for t in TOPICS))
    return EvalSetInput(queries=str(folder / "queries.jsonl"), qrels=str(folder / "qrels.tsv"))


def _serving(tmp_path: Path) -> tuple[Harness, EvalSetInput]:
    """Ten docs on ten distinct topics, synced; a golden set that finds each by its own words."""
    h = Harness()
    for topic in TOPICS:
        h.write(f"doc-{topic}", body=paragraphs(topic, size=25))
    h.run()
    return h, _golden(tmp_path)


def _promoted(h: Harness, eval_set: EvalSetInput) -> dict[str, Any]:
    """The report the Evaluate step stores on a candidate the gate passed (its real figures)."""
    from dynembed.rebuild.evaluate import load_eval_set_from

    svc = h.services()
    golden = load_eval_set_from(eval_set, svc.settings)
    result = measure(svc, h.generation, golden, ["public"], 10).result
    report = {
        "gate_passed": True,
        "created_at": time.time() - 3600,
        "k": 10,
        "golden_set": golden.name,
        "candidate_metrics": {"ndcg": result.ndcg, "recall": result.recall, "mrr": result.mrr},
        "per_query": [
            {"query_id": q, "text": golden.queries[q], "candidate_ndcg": m.ndcg}
            for q, m in result.per_query.items()
        ],
        "eval_set": eval_set.model_dump(),
        "eval_principal": ["public"],
    }
    h.registry.update(h.generation.id, report=report)
    return report


def _corrupt_vectors(h: Harness, share: float = 0.6, seed: int = 7) -> None:
    """Deliberate damage: most chunks' vectors replaced by noise (what a broken embedder or a
    mixed-up model would leave); ids, texts, versions and coverage untouched."""
    rng = random.Random(seed)
    store = h.index.indices[h.generation.index_name]
    for chunk_id in sorted(store):
        if rng.random() < share:
            store[chunk_id]["embedding"] = hash_vector(f"noise {rng.random()}").tolist()


def test_an_unchanged_generation_matches_its_promotion_figures(tmp_path: Path) -> None:
    # GIVEN a generation promoted with its golden set recorded
    h, eval_set = _serving(tmp_path)
    report = _promoted(h, eval_set)
    # WHEN the canary runs on it, nothing having changed
    record = run_canary(h.services(), settle_s=0)
    # THEN it measured the same figures: no drop, every probe passed
    assert record["reference"]["source"] == "promotion"
    assert record["metrics"] == pytest.approx(report["candidate_metrics"])
    assert record["drops"] == pytest.approx({"ndcg": 0.0, "recall": 0.0, "mrr": 0.0})
    assert record["passed"] and record["probe_failures"] == 0 and record["reasons"] == []
    assert set(record["probes"]) == {
        "deleted_docs_absent",
        "newest_edits_retrievable",
        "restricted_principal_public_only",
        "coverage_complete",
        "latency_p95_within_limit",
    }
    # AND the figures are published by generation, the drops also for the alarms
    gauges = h.telemetry.gauges
    by_gen = f"[generation={h.generation.id}]"
    assert gauges[METRICS.canary_ndcg + by_gen] == pytest.approx(report["candidate_metrics"]["ndcg"])
    assert gauges[METRICS.canary_ndcg_drop] == pytest.approx(0.0)
    assert gauges[METRICS.canary_probe_failures] == 0.0
    # AND the report is stored on the generation
    assert h.registry.get(h.generation.id).canary == record


def test_the_report_carries_the_live_queries_sampled_since_the_last_run(tmp_path: Path) -> None:
    # GIVEN a serving generation whose live queries were sampled: one before the last canary
    # run, then three since (two under the calibrated threshold of 0.5, one far from the golden set)
    from dynembed.core.samples import QuerySample, QueryText

    h, eval_set = _serving(tmp_path)
    _promoted(h, eval_set)
    first = run_canary(h.services(), settle_s=0)
    assert first["weak_retrieval_rate"] is None and first["least_covered_queries"] == []

    def sample(text: str, score: float | None, similarity: float, at: float) -> QuerySample:
        return QuerySample(
            generation=h.generation.id,
            at=at,
            query=QueryText.of(text, keep=True),
            best_score=score,
            results=0 if score is None else 10,
            latency_ms=5.0,
            threshold=0.5,
            golden_similarity=similarity,
        )

    h.samples.put_sample(sample("before the last run", 0.1, 0.9, at=first["created_at"] - 10))
    h.samples.put_sample(sample("alpha bravo", 0.9, 0.95, at=first["created_at"] + 1))
    h.samples.put_sample(sample("weak but near", 0.2, 0.8, at=first["created_at"] + 2))
    h.samples.put_sample(sample("how do I bake bread", None, 0.1, at=first["created_at"] + 3))
    # WHEN the canary runs again
    record = run_canary(h.services(), settle_s=0, clock=lambda: first["created_at"] + 60)
    # THEN its weak-retrieval rate is over the three samples since the last run
    assert record["weak_retrieval_rate"] == pytest.approx(2 / 3)
    assert record["live"]["samples"] == 3 and record["live"]["zero_result_rate"] == pytest.approx(1 / 3)
    # AND the least-covered live queries lead with the one farthest from the golden set
    listed = [row["query"] for row in record["least_covered_queries"]]
    assert listed == ["how do I bake bread", "weak but near", "alpha bravo"]
    assert canary.summary(record)["weak_retrieval_rate"] == pytest.approx(2 / 3)


def test_a_degraded_generation_drops_past_the_margin_and_its_alarm_would_fire(tmp_path: Path) -> None:
    # GIVEN a promoted generation whose vectors were then mostly corrupted
    h, eval_set = _serving(tmp_path)
    _promoted(h, eval_set)
    _corrupt_vectors(h)
    # WHEN the canary runs
    record = run_canary(h.services(), settle_s=0)
    # THEN nDCG fell by more than the stack's margin, and the report says so with the numbers
    assert record["drops"]["ndcg"] > THRESHOLDS.canary_max_drop
    assert not record["passed"]
    assert any(r.startswith("ndcg@10") and "below its promotion figure" in r for r in record["reasons"])
    assert record["regressed_queries"] and all(q["delta"] < 0 for q in record["regressed_queries"])
    # AND the drop is published for the alarm, whose evaluator (on the stored report) says it fires
    assert h.telemetry.gauges[METRICS.canary_ndcg_drop] == pytest.approx(record["drops"]["ndcg"])
    latest = monitor_values(h.telemetry.snapshot(), h.registry.get(h.generation.id).canary)
    firing = {a["alarm"] for a in monitor_alarms(latest) if a["firing"]}
    assert "CanaryNdcgDrop" in firing and "CanaryProbeFailures" not in firing


def test_without_promotion_figures_the_first_run_is_the_reference(tmp_path: Path) -> None:
    # GIVEN a bootstrapped generation (no evaluation report) and a default golden set
    h, eval_set = _serving(tmp_path)
    svc = h.services()
    # WHEN the canary runs twice, the vectors corrupted in between
    first = run_canary(svc, default_eval_set=eval_set, settle_s=0)
    _corrupt_vectors(h)
    second = run_canary(h.services(), settle_s=0)
    # THEN the first run is the reference (no drop), and the second is compared with it
    assert first["reference"]["source"] == "first canary" and first["drops"]["ndcg"] == 0.0
    assert second["reference"]["metrics"] == first["metrics"]
    assert second["drops"]["ndcg"] > THRESHOLDS.canary_max_drop
    assert second["previous"]["metrics"] == first["metrics"]


def test_no_golden_set_anywhere_is_a_config_error_and_nothing_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DYNEMBED_EVAL_DIR", raising=False)
    h, _ = _serving(tmp_path)
    with pytest.raises(ConfigError, match="DYNEMBED_EVAL_DIR"):
        run_canary(h.services())
    # THEN nothing is published nor stored: the alarms, missing their data, fire
    assert not [g for g in h.telemetry.gauges if g.startswith("Canary")]
    latest = monitor_values(h.telemetry.snapshot(), h.registry.get(h.generation.id).canary)
    assert all(
        a["firing"] and a["missing"] for a in monitor_alarms(latest) if a["alarm"].startswith("Canary")
    )


def test_no_active_generation_is_an_error() -> None:
    h = Harness()
    h.registry.update(h.generation.id, status=GenerationStatus.STANDBY)
    with pytest.raises(DynembedError, match="no generation is active"):
        run_canary(h.services())


def test_a_standby_is_checked_on_request_but_feeds_no_alarm(tmp_path: Path) -> None:
    # GIVEN a promoted generation that now stands by
    h, eval_set = _serving(tmp_path)
    _promoted(h, eval_set)
    h.registry.update(h.generation.id, status=GenerationStatus.STANDBY)
    # WHEN it is canaried by id
    run_canary(h.services(), generation_id=h.generation.id, settle_s=0)
    # THEN its figures are published by generation only
    assert h.telemetry.gauges and all("[generation=" in key for key in h.telemetry.gauges)


def test_probes_leave_changes_on_their_way_alone_for_the_settle_time(tmp_path: Path) -> None:
    # GIVEN a promoted generation, then a doc written and another deleted, not yet synced
    h, eval_set = _serving(tmp_path)
    _promoted(h, eval_set)
    h.write("doc-kilo", body=paragraphs("kilo", size=25))
    h.remove("doc-alpha")
    svc = h.services()
    # WHEN the canary runs with a settle time, and the pipeline catches up while it waits
    record = run_canary(svc, settle_s=30, sleep=lambda _s: h.run())
    # THEN neither the new doc nor the in-flight delete is a probe failure
    assert record["probes"]["coverage_complete"] and record["probes"]["deleted_docs_absent"]
    # AND WHEN a delete never arrives (the pipeline is stuck), it is one
    h.remove("doc-bravo")
    stuck = run_canary(h.services(), settle_s=30, sleep=lambda _s: None)
    assert not stuck["probes"]["deleted_docs_absent"]
    assert stuck["probe_details"]["deleted_docs_absent"]["indexed_but_gone"] == ["doc-bravo"]


def test_without_a_settle_time_an_unsynced_doc_fails_coverage(tmp_path: Path) -> None:
    h, eval_set = _serving(tmp_path)
    _promoted(h, eval_set)
    h.write("doc-kilo", body=paragraphs("kilo", size=25))
    record = run_canary(h.services(), settle_s=0)
    assert not record["probes"]["coverage_complete"]
    assert "probe coverage_complete failed" in record["reasons"]


def test_the_sentinel_item_is_never_part_of_a_probe(tmp_path: Path) -> None:
    # GIVEN a promoted generation and the sentinel's item synced in the middle of a run
    from dynembed.quality.sentinel import sentinel_item

    h, eval_set = _serving(tmp_path)
    _promoted(h, eval_set)
    h.put_item(sentinel_item(h.schema, int(time.time() * 1000), "end-to-end check x", time.time()))
    h.run()
    # WHEN the canary runs
    record = run_canary(h.services(), settle_s=0)
    # THEN the sentinel is neither the newest edit (its principal is refused to searches) nor coverage
    assert record["passed"], record["reasons"]
    assert SENTINEL_DOC_ID not in json.dumps(record["probe_details"])


def test_an_old_canary_report_is_missing_data_for_the_alarms(tmp_path: Path) -> None:
    # GIVEN a passing canary run, then nothing for longer than the alarms look back
    h, eval_set = _serving(tmp_path)
    _promoted(h, eval_set)
    record = run_canary(h.services(), settle_s=0)
    later = record["created_at"] + TUNING.canary_alarm_period_s + 1
    # WHEN the alarms are evaluated then
    latest = monitor_values(h.telemetry.snapshot(), record, now=later)
    # THEN the canary alarms fire on missing data (a canary that stopped is a failure)
    assert all(
        a["missing"] and a["firing"] for a in monitor_alarms(latest) if a["alarm"].startswith("Canary")
    )


def test_the_report_renders_as_the_canary_page(tmp_path: Path) -> None:
    # GIVEN a canary report on a promoted generation
    h, eval_set = _serving(tmp_path)
    _promoted(h, eval_set)
    run_canary(h.services(), settle_s=0)
    gen = h.registry.get(h.generation.id)
    # WHEN rendered by the HTML renderer, with sentinel figures in the freshness section
    page = render_canary_report(
        canary_html_report(gen, {"freshness": {"sentinel_freshness_s": 1.5, "sentinel_delete_s": 0.8}})
    )
    # THEN its promotion figures and the canary's stand side by side, and the sentinel's are shown
    assert f"candidate {gen.id}" in page and f"canary {gen.id}" in page
    assert "sentinel edit searchable after" in page
    assert canary.summary(gen.canary)["weak_retrieval_rate"] is None  # not computed here


def test_the_scheduled_event_is_a_canary_of_the_active_generation() -> None:
    assert CanaryRequest.model_validate(load_event("eventbridge_scheduled")).generation_id is None
    with pytest.raises(ValueError, match="generation_id"):
        CanaryRequest.model_validate({"generation_id": "Not An Id"})
