"""The rebuild workflow's steps on fakes (``dynembed.rebuild.steps``), each through the same
router the workflow Lambda uses: validate → register → add_write_target → backfill_page →
catchup_status → evaluate → promote / reject / mark_failed, and the actions of their own
(rollback, retire, targeted backfill). The active generation serves throughout (I6)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dynembed.core.errors import ConfigError, DynembedError, UnknownGenerationError
from dynembed.core.models import GenerationStatus, ReconcileJob
from dynembed.core.schema import SourceSchema, UpdateMode, UpdatePolicy
from dynembed.embedders.counting import CountingEmbedder
from dynembed.embedders.hashing import HashingEmbedder
from dynembed.quality import measure
from dynembed.rebuild import evaluate, steps
from tests.fakes import InMemoryHeldJobs
from tests.harness import SCHEMA, Harness, paragraphs

pytestmark = pytest.mark.unit

DOCS = {
    "py": ("Python packaging", paragraphs("wheel", "pip", "setuptools")),
    "js": ("JavaScript bundlers", paragraphs("webpack", "rollup", "esbuild")),
    "db": ("Database indexes", paragraphs("btree", "postgres", "vacuum")),
    "ml": ("Machine learning", paragraphs("gradient", "tensor", "epoch")),
}
QUERIES = {"q1": "pip wheel setuptools", "q2": "webpack rollup", "q3": "postgres btree vacuum"}
QRELS = [("q1", "py"), ("q2", "js"), ("q3", "db")]
SMALL = {"target_chars": 200, "max_chars": 400, "min_chars": 60}


@pytest.fixture
def golden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    (tmp_path / "queries.jsonl").write_text(
        "".join(json.dumps({"query_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    (tmp_path / "qrels.tsv").write_text("".join(f"{q}\t{d}\t1\n" for q, d in QRELS))
    monkeypatch.setenv("DYNEMBED_REPORTS_DIR", str(tmp_path / "reports"))
    return {"queries": str(tmp_path / "queries.jsonl"), "qrels": str(tmp_path / "qrels.tsv")}


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, float]]]:
    """What the Evaluate step publishes, by generation."""
    calls: list[tuple[str, dict[str, float]]] = []

    def record(report: Any, generation_id: str, telemetry: Any) -> None:
        calls.append((generation_id, report.cloudwatch_metrics()))

    monkeypatch.setattr(evaluate, "publish_metrics", record)
    return calls


def serving(schema: SourceSchema = SCHEMA, **options: Any) -> Harness:
    """An installed pipeline: g1 active and serving the four docs."""
    h = Harness(schema=schema, **options)
    for doc_id, (title, body) in DOCS.items():
        h.write(doc_id, title=title, body=body, tenant="acme" if doc_id != "ml" else "globex")
    h.run()
    return h


def step(h: Harness, name: str, config: dict[str, Any] | None = None, **extra: Any) -> Any:
    event: dict[str, Any] = {"step": name, **extra}
    if config is not None:
        event["config"] = config
    return steps.run_step(event, h.services())


def validated(h: Harness, golden: dict[str, str], **raw: Any) -> dict[str, Any]:
    raw = {
        "generation_id": "cand",
        "model": "hash-256",
        "chunker": SMALL,
        "eval": golden,
        "backfill_segments": 2,
        "page_size": 2,
        **raw,
    }
    config: dict[str, Any] = step(h, "validate", input=raw)["config"]
    return config


def build(h: Harness, config: dict[str, Any]) -> None:
    """Register, add as write target, backfill every segment to the end."""
    step(h, "register", config)
    step(h, "add_write_target", config)
    for segment in range(config["backfill_segments"]):
        while not step(h, "backfill_page", config, segment=segment)["done"]:
            pass


# ---- Validate, Register, AddWriteTarget ------------------------------------------------------------


def test_validate_fills_in_a_generation_id_and_checks_the_golden_set(golden: dict[str, str]) -> None:
    h = serving()
    config = step(h, "validate", input={"model": "hash-256", "eval": golden})["config"]
    assert config["generation_id"].startswith("g") and "hash-256" in config["generation_id"]
    with pytest.raises(ConfigError, match="golden set is required"):
        step(h, "validate", input={"model": "hash-256"})
    with pytest.raises(ConfigError, match=r"eval\.queries: file not found"):
        step(h, "validate", input={"model": "hash-256", "eval": {**golden, "queries": "/nope.jsonl"}})
    with pytest.raises(ConfigError, match="model"):
        step(h, "validate", input={"model": "no-such-model", "eval": golden})


def test_register_creates_the_candidate_and_a_rerun_resumes_it(golden: dict[str, str]) -> None:
    # GIVEN a valid input
    h = serving()
    config = validated(h, golden)
    # WHEN Register runs  THEN the candidate is building, with an index and fresh progress
    first = step(h, "register", config)
    assert (first["generation_id"], first["resumed"], first["segments"], first["docs_done"]) == (
        "cand",
        False,
        [0, 1],
        0,
    )
    cand = h.registry.get("cand")
    assert cand.status is GenerationStatus.BUILDING and not cand.write_target
    assert cand.index_name in h.index.indices
    # WHEN it runs again (a retried or resumed run)  THEN it resumes: same progress, one more run
    again = step(h, "register", config)
    assert again["resumed"] is True
    progress = h.services().progress.load("cand")
    assert progress is not None and progress.runs == 2


def test_register_refuses_an_id_with_another_model_or_a_serving_generation(golden: dict[str, str]) -> None:
    h = serving()
    step(h, "register", validated(h, golden))
    with pytest.raises(ConfigError, match="exists with model"):
        step(h, "register", validated(h, golden, chunker={**SMALL, "target_chars": 300}))
    with pytest.raises(ConfigError, match="is active"):
        step(
            h,
            "register",
            validated(
                h,
                golden,
                generation_id="g1",
                chunker={"target_chars": 200, "max_chars": 400, "min_chars": 60},
            ),
        )


def test_register_resets_a_failed_candidate_to_building(golden: dict[str, str]) -> None:
    h = serving()
    config = validated(h, golden)
    step(h, "register", config)
    h.registry.update("cand", status=GenerationStatus.FAILED)
    assert step(h, "register", config)["resumed"] is True
    assert h.registry.get("cand").status is GenerationStatus.BUILDING


def test_add_write_target_makes_live_changes_reach_the_candidate(golden: dict[str, str]) -> None:
    h = serving()
    config = validated(h, golden)
    step(h, "register", config)
    assert step(h, "add_write_target", config) == {"generation_id": "cand", "write_targets": ["g1", "cand"]}
    # A live edit now reaches both generations.
    h.write("py", body=paragraphs("wheel", "pip", "poetry"))
    h.run()
    assert h.ledger.get("py", "cand") is not None


# ---- Backfill -------------------------------------------------------------------------------------


def test_backfill_indexes_every_doc_page_by_page_and_records_progress(golden: dict[str, str]) -> None:
    # GIVEN a registered candidate scanned in 2 segments of 2-doc pages
    h = serving()
    config = validated(h, golden)
    build(h, config)
    # THEN every doc is in the candidate's ledger and index, and the progress says so
    cand = h.registry.get("cand")
    assert {e.doc_id for e in h.ledger.scan("cand")} == set(DOCS)
    assert h.differences(cand) == {"orphaned": [], "missing": [], "stale": [], "duplicates": []}
    progress = h.services().progress.load("cand")
    assert progress is not None and progress.done and progress.total("docs") == len(DOCS)
    assert progress.finished_at is not None


def test_backfill_skips_a_malformed_doc_and_records_it(golden: dict[str, str]) -> None:
    h = serving()
    h.source.items["bad"] = {"doc_id": "bad", "version": "seven", "body": "x", "acl": ["public"]}
    config = validated(h, golden, backfill_segments=1, page_size=10)
    build(h, config)
    progress = h.services().progress.load("cand")
    assert progress is not None and progress.failed_docs == ["bad"]
    assert {e.doc_id for e in h.ledger.scan("cand")} == set(DOCS)


def test_backfill_stops_after_pages_per_task_and_resumes_where_it_stopped(golden: dict[str, str]) -> None:
    h = serving()
    config = validated(h, golden, backfill_segments=1, page_size=1, pages_per_task=2)
    step(h, "register", config)
    first = step(h, "backfill_page", config, segment=0)
    assert (first["pages"], first["docs"], first["done"]) == (2, 2, False)
    second = step(h, "backfill_page", config, segment=0)
    assert second["docs"] == 4


def test_backfill_refuses_an_unknown_segment_or_a_candidate_not_building(golden: dict[str, str]) -> None:
    h = serving()
    config = validated(h, golden)
    step(h, "register", config)
    with pytest.raises(ConfigError, match="segment 7"):
        step(h, "backfill_page", config, segment=7)
    h.registry.update("cand", status=GenerationStatus.FAILED)
    with pytest.raises(DynembedError, match="not building"):
        step(h, "backfill_page", config, segment=0)


# ---- CatchUp ---------------------------------------------------------------------------------------


def test_catchup_is_caught_up_after_a_clean_backfill(golden: dict[str, str]) -> None:
    h = serving()
    config = validated(h, golden)
    build(h, config)
    status = step(h, "catchup_status", config, checks=0)
    assert (status["caught_up"], status["docs_behind"], status["repairs_enqueued"], status["checks"]) == (
        True,
        0,
        0,
        1,
    )


def test_catchup_enqueues_repairs_for_docs_changed_while_it_was_not_a_write_target(
    golden: dict[str, str],
) -> None:
    # GIVEN a candidate backfilled, then an edit and a delete it never saw
    h = serving()
    config = validated(h, golden)
    build(h, config)
    h.registry.update("cand", write_target=False)
    h.write("py", body=paragraphs("wheel", "conda"))
    h.remove("js")
    h.run()
    # WHEN CatchUp checks, with nothing queued
    status = step(h, "catchup_status", config, checks=4)
    # THEN both docs are behind and repair jobs for the candidate alone are enqueued
    assert (status["caught_up"], status["docs_behind"], status["repairs_enqueued"]) == (False, 2, 2)
    assert sorted((j.doc_id, j.generations) for j in h.queue.sent) == [("js", ["cand"]), ("py", ["cand"])]
    # AND once they are reconciled, it has caught up
    h.sync()
    assert step(h, "catchup_status", config, checks=5)["caught_up"] is True


def test_catchup_waits_for_queued_jobs_and_excuses_held_docs(golden: dict[str, str]) -> None:
    # GIVEN a batched tenant whose edit is held, and a jobs queue with messages in flight
    schema = SourceSchema(
        metadata_attributes=("category",), policies={"tenant:globex": UpdatePolicy(mode=UpdateMode.BATCHED)}
    )
    held = InMemoryHeldJobs()
    h = serving(schema, held=held)
    config = validated(h, golden)
    build(h, config)
    h.write("ml", body=paragraphs("gradient", "tensor", "batch"), tenant="globex")
    h.classify()
    assert held.count() == 1 and h.queue.sent == []
    h.queue.in_flight = 2
    # WHEN CatchUp checks  THEN the held doc is not waited for, the queued jobs are
    status = step(h, "catchup_status", config, checks=0)
    assert (status["held_docs"], status["docs_behind"], status["pending_jobs"], status["caught_up"]) == (
        1,
        0,
        2,
        False,
    )
    h.queue.in_flight = 0
    assert step(h, "catchup_status", config, checks=1)["caught_up"] is True


def test_catchup_before_the_backfill_ends_is_an_error(golden: dict[str, str]) -> None:
    h = serving()
    config = validated(h, golden)
    step(h, "register", config)
    with pytest.raises(DynembedError, match="not finished"):
        step(h, "catchup_status", config, checks=0)


# ---- Evaluate, Approval, Promote, Reject, MarkFailed -------------------------------------------------


def test_evaluate_passes_an_equal_candidate_and_promote_swaps_the_alias_I6(
    golden: dict[str, str], published: list[tuple[str, dict[str, float]]]
) -> None:
    # GIVEN a candidate built like the active generation
    h = serving()
    config = validated(h, golden)
    build(h, config)
    # WHEN it is evaluated
    result = step(h, "evaluate", config)
    # THEN it passes every probe, the report is stored, written and published
    assert result["passed"] is True, result["reasons"]
    assert all(result["probes"].values()) and result["baseline_generation"] == "g1"
    assert result["coverage"] == {"indexed": 4, "source": 4}
    assert h.services().blobs.read(result["report_location"]).strip()
    assert h.registry.get("cand").status is GenerationStatus.EVALUATING
    assert h.registry.get("cand").report["gate_passed"] is True  # type: ignore[index]
    assert [g for g, _ in published] == ["cand"]
    # WHEN promoted  THEN the alias serves it, g1 is standby and still a write target
    move = step(h, "promote", config)
    assert (move["before"], move["after"], move["standby"]) == (h.generation.index_name, "chunks-cand", "g1")
    assert h.index.alias_target(h.alias) == "chunks-cand"
    g1 = h.registry.get("g1")
    assert (g1.status, g1.write_target) == (GenerationStatus.STANDBY, True)
    assert h.services().search("pip wheel", "anyone").generation == "cand"
    # AND a retried promote is harmless
    step(h, "promote", config)
    assert h.index.alias_target(h.alias) == "chunks-cand"


class QueryLog:
    """Feature hashing that logs the queries of every call it gets, one tuple per call."""

    def __init__(self) -> None:
        self.inner = HashingEmbedder()
        self.spec = self.inner.spec
        self.calls: list[tuple[str, ...]] = []

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.calls.append((text,))
        return self.inner.embed_query(text)

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(tuple(texts))
        return self.inner.embed_queries(texts)


def test_evaluate_embeds_the_golden_set_once_in_one_call_beside_the_timed_queries(
    golden: dict[str, str], published: list[tuple[str, dict[str, float]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a candidate of the active generation's model, and one golden query timed per run
    monkeypatch.setattr(measure, "LATENCY_QUERIES", 1)
    log = QueryLog()
    h = serving(embedder=CountingEmbedder(log))
    config = validated(h, golden)
    build(h, config)
    log.calls.clear()
    # WHEN it is evaluated (both generations measured, probes, calibration)
    result = step(h, "evaluate", config)
    # THEN the untimed queries reach the model once, in one call, for the whole evaluation
    assert result["passed"] is True, result["reasons"]
    assert [c for c in log.calls if len(c) > 1] == [(QUERIES["q2"], QUERIES["q3"])]
    # AND the timed one is embedded alone on each generation (after each run's warm-up), as live
    singles = Counter(c[0] for c in log.calls if len(c) == 1)
    assert singles[QUERIES["q1"]] == 4
    assert singles[QUERIES["q2"]] == singles[QUERIES["q3"]] == 0
    # AND the calibration's golden vectors are the model's own
    keys = h.registry.get("cand").report["golden_queries"]["keys"]  # type: ignore[index]
    cached = h.cache.get_many(log.spec.model_id, list(keys.values()))  # type: ignore[union-attr]
    assert np.allclose(cached[keys["q2"]], log.inner.embed_query(QUERIES["q2"]), atol=1e-6)


def test_evaluation_figures_do_not_depend_on_how_the_queries_were_embedded(
    golden: dict[str, str], published: list[tuple[str, dict[str, float]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = []
    for timed in (1, 100):  # most queries batched, or every one alone
        monkeypatch.setattr(measure, "LATENCY_QUERIES", timed)
        h = serving()
        config = validated(h, golden, chunker={**SMALL, "max_doc_chars": 80}, gate={"max_regression": 0.0})
        build(h, config)
        result = step(h, "evaluate", config)
        report = h.registry.get("cand").report or {}
        figures.append(
            (
                result["candidate"],
                result["baseline"],
                result["threshold"],
                result["reasons"],
                report["per_query"],
            )
        )
    assert figures[0] == figures[1]


def test_a_candidate_that_loses_documents_fails_the_gate_and_is_rejected(
    golden: dict[str, str], published: list[tuple[str, dict[str, float]]]
) -> None:
    # GIVEN a candidate whose chunker truncates every doc to its title
    h = serving()
    config = validated(h, golden, chunker={**SMALL, "max_doc_chars": 80}, gate={"max_regression": 0.0})
    build(h, config)
    result = step(h, "evaluate", config)
    # THEN the gate fails with reasons, and promote refuses it
    assert result["passed"] is False and result["reasons"]
    with pytest.raises(DynembedError, match="gate did not pass"):
        step(h, "promote", config)
    # WHEN rejected  THEN it is failed and out of the write targets; the active one serves on
    rejected = step(h, "reject", config, reasons=result["reasons"])
    assert rejected["status"] == "failed"
    cand = h.registry.get("cand")
    assert (cand.status, cand.write_target) == (GenerationStatus.FAILED, False)
    assert h.index.alias_target(h.alias) == h.generation.index_name
    with pytest.raises(DynembedError, match="only a new build"):
        step(h, "evaluate", config)


def test_promotion_waits_for_an_approval_when_required(
    golden: dict[str, str], published: list[tuple[str, dict[str, float]]]
) -> None:
    h = serving()
    config = validated(h, golden, require_approval=True)
    build(h, config)
    assert step(h, "evaluate", config)["passed"] is True
    assert step(h, "request_approval", config, task_token="tok-1") == {
        "generation_id": "cand",
        "approval": "requested",
        "stage": "promotion",
    }
    with pytest.raises(DynembedError, match="no one approved"):
        step(h, "promote", config)

    class Sfn:
        def __init__(self) -> None:
            self.successes: list[tuple[str, dict[str, Any]]] = []

        def send_task_success(self, taskToken: str, output: str) -> None:
            self.successes.append((taskToken, json.loads(output)))

    sfn = Sfn()
    decision = steps.answer_approval(h.services(), sfn, "cand", approved=True, by="ops", reason="looks good")
    assert decision["approved"] is True and sfn.successes[0][0] == "tok-1"
    with pytest.raises(DynembedError, match="not waiting"):
        steps.answer_approval(h.services(), sfn, "cand", approved=True, by="ops")
    step(h, "promote", config)
    assert h.index.alias_target(h.alias) == "chunks-cand"


def test_mark_failed_undoes_a_half_done_promotion(golden: dict[str, str]) -> None:
    # GIVEN a promotion that moved the alias but crashed before the registry followed
    h = serving()
    config = validated(h, golden)
    build(h, config)
    h.index.swap_alias(h.alias, "chunks-cand", h.generation.index_name)
    error = {"Error": "States.TaskFailed", "Cause": json.dumps({"errorMessage": "registry throttled"})}
    # WHEN the workflow's Catch runs MarkFailed
    result = step(h, "mark_failed", config, error=error)
    # THEN the alias is back on the active generation, the candidate failed with the reason
    assert result == {
        "generation_id": "cand",
        "status": "failed",
        "reason": "States.TaskFailed: registry throttled",
        "alias_restored": True,
    }
    assert h.index.alias_target(h.alias) == h.generation.index_name
    cand = h.registry.get("cand")
    assert (cand.status, cand.write_target) == (GenerationStatus.FAILED, False)
    assert cand.report is not None and cand.report["failed_reason"] == "States.TaskFailed: registry throttled"


def test_mark_failed_leaves_what_is_not_this_runs_candidate_alone() -> None:
    h = serving()
    assert steps.mark_failed(h.services(), None, {"Error": "X"})["status"] == "not registered"
    assert steps.mark_failed(
        h.services(), {"generation_id": "ghost"}, {"Error": "X", "Cause": "plain text"}
    ) == {
        "generation_id": "ghost",
        "status": "not registered",
        "reason": "X: plain text",
    }
    assert steps.mark_failed(h.services(), {"generation_id": "g1"}, {})["status"] == "active"
    assert h.registry.get("g1").status is GenerationStatus.ACTIVE


# ---- Rollback, Retire, targeted backfill ---------------------------------------------------------------


def test_rollback_serves_the_standby_again_and_retire_removes_it(
    golden: dict[str, str], published: list[tuple[str, dict[str, float]]]
) -> None:
    # GIVEN cand promoted over g1
    h = serving()
    config = validated(h, golden)
    build(h, config)
    step(h, "evaluate", config)
    step(h, "promote", config)
    # WHEN rolled back  THEN g1 serves again (one alias request) and cand is the standby
    move = step(h, "rollback")
    assert (move["after"], move["standby"]) == (h.generation.index_name, "cand")
    assert h.index.alias_target(h.alias) == h.generation.index_name
    # WHEN the standby is retired  THEN its index and ledger rows are gone; it cannot come back
    retired = step(h, "retire", generation_id="cand")
    assert retired == {"generation_id": "cand", "status": "retired", "ledger_rows_deleted": len(DOCS)}
    assert "chunks-cand" not in h.index.indices and list(h.ledger.scan("cand")) == []
    with pytest.raises(UnknownGenerationError, match="no standby"):
        step(h, "rollback")
    with pytest.raises(DynembedError, match="is active"):
        step(h, "retire", generation_id="g1")


def test_targeted_backfill_by_ids_tenant_or_source_type() -> None:
    h = serving(SourceSchema(metadata_attributes=("category",), source_type_attribute="kind"))
    h.source.items["py"]["kind"] = "faq"
    by_ids = step(h, "targeted_backfill", ids="py, db,py,")
    assert by_ids == {"selector": "ids", "jobs_enqueued": 2, "write_targets": ["g1"], "malformed_items": 0}
    assert [(j.doc_id, j.min_source_version) for j in h.queue.sent] == [("py", 1), ("db", 1)]
    h.queue.sent = []
    assert step(h, "targeted_backfill", tenant="globex")["jobs_enqueued"] == 1
    assert [j.doc_id for j in h.queue.sent] == ["ml"]
    h.queue.sent = []
    assert step(h, "targeted_backfill", source_type="faq")["jobs_enqueued"] == 1
    # An id the source does not have still gets a job (reconcile then deletes what is left of it).
    h.queue.sent = []
    step(h, "targeted_backfill", ids=["ghost"])
    assert h.queue.sent == [
        ReconcileJob(
            doc_id="ghost",
            min_source_version=0,
            reason="targeted backfill",
            enqueued_at=h.queue.sent[0].enqueued_at,
        )
    ]


def test_targeted_backfill_needs_exactly_one_selector_the_schema_knows() -> None:
    h = serving()
    with pytest.raises(ConfigError, match="exactly one"):
        step(h, "targeted_backfill")
    with pytest.raises(ConfigError, match="exactly one"):
        step(h, "targeted_backfill", tenant="acme", ids=["py"])
    with pytest.raises(ConfigError, match="source_type_attribute"):
        step(h, "targeted_backfill", source_type="faq")
    no_tenant = serving(SourceSchema(tenant_attribute=None))
    with pytest.raises(ConfigError, match="tenant_attribute"):
        step(no_tenant, "targeted_backfill", tenant="acme")


def test_the_router_names_the_known_steps() -> None:
    h = serving()
    with pytest.raises(ConfigError, match=r"known steps: .*add_write_target"):
        step(h, "frobnicate", {})
    with pytest.raises(ConfigError, match="no 'config'"):
        step(h, "register")
    assert set(steps.STEP_NAMES) >= {
        "validate",
        "register",
        "promote",
        "rollback",
        "retire",
        "targeted_backfill",
    }
