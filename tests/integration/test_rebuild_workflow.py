"""The real rebuild state machine (the very ASL the CDK stack deploys) on moto's interpreter,
its Lambda tasks dispatched in-process to the workflow handler, osmem for the index and the
pumps running, so live changes flow while a generation builds.

A small slice of the Python FAQ set keeps every run to a few seconds: 30 queries, the docs
they judge relevant and a dozen distractors, split over two tenants. hash-256 (no model) is
the workhorse; the tests that load static-64 are marked ``models``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from dynembed.adapters.sqs import SqsJobQueue
from dynembed.core.errors import DynembedError, TransientError
from dynembed.core.models import ChunkerSpec, Generation, GenerationStatus, chunk_id
from dynembed.core.schema import SourceSchema
from dynembed.embedders.catalog import get_embedder, spec_for
from dynembed.embedders.counting import CountingEmbedder
from dynembed.quality.report import render_markdown_report
from dynembed.rebuild import steps
from dynembed.rebuild.generations import bootstrap, create, new_generation
from dynembed.rebuild.progress import BackfillProgress
from dynembed.wiring import Services
from dynembed_ops import paths
from dynembed_ops.local.stack import LocalStack
from dynembed_ops.local.stepfunctions import (
    RebuildFailed,
    install_rebuild_workflow,
    run_rebuild,
    start_rebuild,
    state_machine_arn,
    wait_for_execution,
)
from dynembed_ops.source_app import SourceApp
from tests.events import load_event

pytestmark = pytest.mark.integration

SCHEMA = SourceSchema(
    content_attributes=("title", "body"),
    metadata_attributes=("category",),
    access_attributes=("acl",),
    tenant_attribute="tenant",
)
READER = "reader"
TRUNCATING = {"max_doc_chars": 80}
"""A chunker that keeps the first 80 characters of each doc: clearly worse than the default."""
QUERIES = 30
DISTRACTORS = 12


@dataclass(frozen=True)
class Golden:
    corpus: Path
    queries: Path
    qrels: Path
    tenants: dict[str, str]
    first_query: str


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    folder = tmp_path_factory.mktemp("faq-slice")
    queries = [json.loads(line) for line in paths.FAQ_QUERIES.read_text().splitlines()[:QUERIES]]
    wanted = {q["query_id"] for q in queries}
    qrels = [line.split("\t") for line in paths.FAQ_QRELS.read_text().splitlines()]
    qrels = [row for row in qrels if row[0] in wanted]
    relevant = {row[1] for row in qrels}
    corpus = [json.loads(line) for line in paths.FAQ_CORPUS.read_text().splitlines()]
    chosen = [d for d in corpus if d["doc_id"] in relevant]
    chosen += [d for d in corpus if d["doc_id"] not in relevant][:DISTRACTORS]
    tenants = {d["doc_id"]: ("faq-a" if n % 2 == 0 else "faq-b") for n, d in enumerate(chosen)}
    docs = [{**d, "acl": ["public"], "tenant": tenants[d["doc_id"]]} for d in chosen]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (folder / "qrels.tsv").write_text("\n".join("\t".join(row) for row in qrels))
    return Golden(
        folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels.tsv", tenants, queries[0]["text"]
    )


def _reset_moto() -> None:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalStack]:
    """A fresh local stack with the rebuild workflow installed; its stop puts the environment
    back (moto's backends are process-wide, so they are reset too)."""
    monkeypatch.setenv("DYNEMBED_REPORTS_DIR", str(tmp_path / "reports"))
    _reset_moto()
    local = LocalStack(schema=SCHEMA).start()
    install_rebuild_workflow(local)
    try:
        yield local
    finally:
        local.stop()
        _reset_moto()


# ---- helpers ------------------------------------------------------------------------------------------


def table(stack: LocalStack) -> Any:
    assert stack.info is not None
    return boto3.resource("dynamodb", endpoint_url=stack.info.aws_url, region_name=stack.info.region).Table(
        stack.services().settings.source_table
    )


class SourceWriter:
    """What a source application does to the table: every write bumps the version and stamps
    ``updated_at`` (plain boto3, so these tests depend on nothing but the table)."""

    def __init__(self, stack: LocalStack) -> None:
        self.table = table(stack)

    def update(self, doc_id: str, changes: dict[str, Any]) -> None:
        item = self.table.get_item(Key={"doc_id": doc_id}, ConsistentRead=True).get("Item") or {
            "doc_id": doc_id
        }
        self.put({**item, **changes})

    def put(self, doc: dict[str, Any]) -> None:
        import time
        from decimal import Decimal

        current = self.table.get_item(Key={"doc_id": doc["doc_id"]}, ConsistentRead=True).get("Item")
        version = int(current["version"]) + 1 if current else 1
        self.table.put_item(
            Item={**doc, "version": version, "updated_at": Decimal(str(round(time.time(), 3)))}
        )

    def delete(self, doc_id: str) -> None:
        self.table.delete_item(Key={"doc_id": doc_id})


def source_version(stack: LocalStack, doc_id: str) -> int:
    item = table(stack).get_item(Key={"doc_id": doc_id}, ConsistentRead=True)["Item"]
    return int(item["version"])


def start_baseline(
    stack: LocalStack, golden: Golden, model: str = "hash-256", chunker: dict[str, Any] | None = None
) -> Generation:
    """The first generation, serving the synced corpus."""
    svc = stack.services()
    gen = new_generation(spec_for(model), ChunkerSpec(**(chunker or {})), svc.settings.index_prefix)
    bootstrap(svc.registry, svc.index, svc.settings.index_alias, gen)
    SourceApp(table(stack), svc.schema).load(golden.corpus)
    stack.drain()
    return gen


def rebuild_input(golden: Golden, model: str = "hash-256", **overrides: Any) -> dict[str, Any]:
    return {
        "model": model,
        "eval": {"queries": str(golden.queries), "qrels": str(golden.qrels)},
        "eval_principal": [READER],
        "backfill_segments": 2,
        "page_size": 8,
        "pages_per_task": 2,
        "catchup_wait_s": 1,
        "catchup_max_checks": 30,
        **overrides,
    }


def rebuild(stack: LocalStack, payload: dict[str, Any]) -> dict[str, Any]:
    """Run the state machine with the pumps going (live sync during the rebuild)."""
    with stack.background(interval_s=0.05):
        return run_rebuild(stack, payload, timeout_s=180)


def hits(
    svc: Services, text: str, principal: str | list[str] = READER, generation: str | None = None
) -> list[tuple[str, str, int, float]]:
    response = svc.search(text, principal, k=30, generation=generation)
    return [(r.doc_id, r.chunk_key, r.source_version, round(r.score, 9)) for r in response.results]


def docs_found(svc: Services, text: str, principal: str | list[str] = READER) -> dict[str, int]:
    return {doc: version for doc, _key, version, _score in hits(svc, text, principal)}


def alias_target(svc: Services) -> str | None:
    return svc.index.alias_target(svc.settings.index_alias)


@contextlib.contextmanager
def watch_alias(svc: Services) -> Iterator[set[str | None]]:
    """Every index the alias pointed at while the block ran (polled every 20 ms)."""
    seen: set[str | None] = {alias_target(svc)}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.add(alias_target(svc))
            stop.wait(0.02)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        seen.add(alias_target(svc))


def states_entered(stack: LocalStack) -> list[str]:
    """State names of the latest execution, in order."""
    sfn = stack.client("stepfunctions")
    arn = state_machine_arn(sfn)
    latest = sfn.list_executions(stateMachineArn=arn)["executions"][0]["executionArn"]
    events = sfn.get_execution_history(executionArn=latest, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def task_errors(stack: LocalStack) -> list[str]:
    """Error names of the failed tasks of the latest execution (retried ones included)."""
    sfn = stack.client("stepfunctions")
    latest = sfn.list_executions(stateMachineArn=state_machine_arn(sfn))["executions"][0]["executionArn"]
    events = sfn.get_execution_history(executionArn=latest, maxResults=1000)["events"]
    return [e["taskFailedEventDetails"]["error"] for e in events if "taskFailedEventDetails" in e]


def intercept_pages(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[int, Any, list[dict[str, Any]]], list[dict[str, Any]]]
) -> list[list[str]]:
    """Wrap the backfill's page reconcile (it runs in this process, inside the workflow Lambda):
    ``before(call_number, generation, items)`` may act, raise, or shrink the page. Returns the
    doc ids of each call's page, in call order."""
    original = steps._reconcile_page
    calls: list[list[str]] = []
    lock = threading.Lock()

    def wrapped(svc: Any, gen: Any, items: list[dict[str, Any]]) -> Any:
        with lock:
            calls.append([str(item["doc_id"]) for item in items])
            number = len(calls)
        return original(svc, gen, before(number, gen, items))

    monkeypatch.setattr(steps, "_reconcile_page", wrapped)
    return calls


def index_chunks(svc: Services, gen: Generation) -> list[tuple[str, dict[str, Any]]]:
    svc.index.refresh(gen.index_name)
    return list(
        svc.index.iter_chunks(gen.index_name, ["doc_id", "chunk_key", "content_hash", "source_version"])
    )


# ---- promotion, rejection, rollback ---------------------------------------------------------------------


def test_a_better_generation_is_promoted_and_rollback_restores_the_alias_in_one_request(
    stack: LocalStack, golden: Golden, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reports_dir = (tmp_path / "reports").resolve()
    # GIVEN a serving generation whose chunker truncates every doc to 80 characters
    svc = stack.services()
    baseline = start_baseline(stack, golden, chunker=TRUNCATING)
    before_results = hits(svc, golden.first_query)
    alias_before = alias_target(svc)
    # WHEN the rebuild to the default chunker runs
    out = rebuild(stack, rebuild_input(golden))
    # THEN the gate passed on better metrics and the candidate serves
    candidate = svc.registry.get(out["generation_id"])
    evaluation = out["evaluation"]
    assert out["decision"] == "promoted", evaluation["reasons"]
    assert evaluation["candidate"]["ndcg"] > evaluation["baseline"]["ndcg"]
    assert evaluation["baseline_generation"] == baseline.id
    assert all(evaluation["probes"].values())
    assert alias_target(svc) == candidate.index_name != alias_before
    assert (candidate.status, candidate.write_target) == (GenerationStatus.ACTIVE, True)
    assert (svc.registry.get(baseline.id).status, svc.registry.get(baseline.id).write_target) == (
        GenerationStatus.STANDBY,
        True,
    )
    # AND the report is in the registry and in a Markdown file under the reports folder, which
    # the registry names; its metrics went out by generation
    assert candidate.report is not None and candidate.report["gate_passed"] is True
    location = Path(evaluation["report_location"])
    assert candidate.report["report_location"] == str(location) and location.parent == reports_dir
    markdown = location.read_text()
    assert markdown == render_markdown_report(candidate.report) and "gate PASSED" in markdown
    gauges = stack.services().telemetry.snapshot()["gauges"]
    for name, key in (("EvalNdcgAt10", "ndcg"), ("EvalRecallAt10", "recall"), ("EvalMrrAt10", "mrr")):
        assert gauges[f"{name}[generation={candidate.id}]"] == pytest.approx(evaluation["candidate"][key])

    # WHEN ops roll back
    alias_requests = count_alias_requests(monkeypatch)
    move = steps.rollback(svc)
    # THEN one _aliases request moved the alias back, and search answers as before the promotion
    assert len(alias_requests) == 1
    assert move["after"] == alias_before == alias_target(svc)
    assert hits(svc, golden.first_query) == before_results
    assert svc.registry.get(baseline.id).status is GenerationStatus.ACTIVE
    assert svc.registry.get(candidate.id).status is GenerationStatus.STANDBY


def count_alias_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every POST /_aliases the OpenSearch client sends from now on."""
    from opensearchpy.transport import Transport

    sent: list[str] = []
    original = Transport.perform_request

    def counting(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method == "POST" and url.rstrip("/").endswith("_aliases"):
            sent.append(url)
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(Transport, "perform_request", counting)
    return sent


def test_a_truncating_candidate_is_rejected_and_the_alias_never_moves(
    stack: LocalStack, golden: Golden, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a good serving generation
    svc = stack.services()
    baseline = start_baseline(stack, golden)
    swaps: list[tuple[Any, ...]] = []
    real_swap = svc.index.swap_alias

    def spying_swap(*args: Any) -> None:
        swaps.append(args)
        real_swap(*args)

    monkeypatch.setattr(svc.index, "swap_alias", spying_swap)
    # WHEN a candidate that truncates docs is built and evaluated
    with watch_alias(svc) as seen:
        out = rebuild(stack, rebuild_input(golden, chunker=TRUNCATING))
    # THEN the gate rejected it, with the numbers, and the alias never pointed anywhere else
    assert out["decision"] == "rejected"
    assert any("dropped" in reason for reason in out["reasons"]), out["reasons"]
    assert seen == {baseline.index_name}
    assert swaps == []
    assert "Promote" not in states_entered(stack)
    # AND the candidate is failed, out of the write targets, its index kept for inspection
    candidate = svc.registry.get(out["generation_id"])
    assert (candidate.status, candidate.write_target) == (GenerationStatus.FAILED, False)
    assert candidate.report is not None and candidate.report["gate_passed"] is False
    assert "dropped" in candidate.report["rejected_reason"]
    assert index_chunks(svc, candidate)
    assert svc.registry.get(baseline.id).status is GenerationStatus.ACTIVE


@pytest.mark.models
def test_migrating_to_a_better_model_promotes_it(stack: LocalStack, golden: Golden) -> None:
    # GIVEN static-64 serving (nDCG@10 0.13 on the whole FAQ set; hash-256 scores 0.34)
    svc = stack.services()
    start_baseline(stack, golden, model="static-64")
    # WHEN the rebuild to hash-256 runs
    out = rebuild(stack, rebuild_input(golden, model="hash-256"))
    # THEN it is promoted and queries are embedded by the new model (I1)
    assert out["decision"] == "promoted", out["evaluation"]["reasons"]
    response = svc.search(golden.first_query, READER)
    assert response.model_id == spec_for("hash-256").model_id
    assert {r.model_id for r in response.results} == {response.model_id}


@pytest.mark.models
def test_a_worse_model_is_rejected(stack: LocalStack, golden: Golden) -> None:
    svc = stack.services()
    baseline = start_baseline(stack, golden, model="hash-256")
    with watch_alias(svc) as seen:
        out = rebuild(stack, rebuild_input(golden, model="static-64"))
    assert out["decision"] == "rejected"
    assert seen == {baseline.index_name}


# ---- shadow traffic ---------------------------------------------------------------------------------


def test_live_searches_during_the_rebuild_are_shadowed_on_the_candidate_and_reported(
    stack: LocalStack, golden: Golden, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a serving generation whose chunker truncates every doc, and live traffic that arrives
    # while the candidate (the default chunker) is still building: at its first catch-up check
    svc = stack.services()
    baseline = start_baseline(stack, golden, chunker=TRUNCATING)
    texts = [json.loads(line)["text"] for line in golden.queries.read_text().splitlines()][:12]
    answered: list[Any] = []
    candidate_state: list[tuple[GenerationStatus, bool]] = []
    real_catchup = steps.catchup_status

    def catchup_with_live_traffic(svc_: Any, config: Any, checks: int, now: float | None = None) -> Any:
        if not answered:
            candidate = svc_.registry.get(str(config.generation_id))
            candidate_state.append((candidate.status, candidate.write_target))
            answered.extend(svc_.search(text, READER, k=10) for text in texts)  # through the alias
            # the shadow function (pumped in the background) runs them on the candidate
            wait_until(
                lambda: "done" if len(svc_.query_samples.comparisons(candidate.id)) >= len(texts) else None
            )
        return real_catchup(svc_, config, checks, now)

    monkeypatch.setattr(steps, "catchup_status", catchup_with_live_traffic)
    # WHEN the rebuild runs
    out = rebuild(stack, rebuild_input(golden))
    # THEN the searches ran while the candidate was building and a write target, and the callers
    # got the active generation's answers
    assert candidate_state == [(GenerationStatus.BUILDING, True)]
    assert {response.generation for response in answered} == {baseline.id}
    # AND the stored report carries the shadow figures, in the shape the HTML report renders
    candidate = svc.registry.get(out["generation_id"])
    shadow = (candidate.report or {})["shadow"]
    assert shadow["generation_id"] == candidate.id and shadow["queries"] == len(texts)
    assert 0.0 <= shadow["overlap@10"] < 1.0 and 0.0 <= shadow["rbo"] < 1.0  # truncated vs whole docs
    assert len(shadow["active_scores"]) == len(shadow["candidate_scores"]) == len(texts)
    assert shadow["disagreements"] and all(d["query"].startswith("sha256:") for d in shadow["disagreements"])
    assert out["evaluation"]["shadow"]["queries"] == len(texts)
    # AND the figures are what the two generations answer (recomputed from the indices, unchanged since)
    from dynembed.quality.overlap import overlap_at_k, rbo

    def ranking(text: str, generation: str) -> list[str]:
        response = svc.search(text, READER, k=10, generation=generation)
        return list(dict.fromkeys(r.doc_id for r in response.results))

    pairs = [(ranking(t, baseline.id), ranking(t, candidate.id)) for t in texts]
    assert shadow["overlap@10"] == pytest.approx(sum(overlap_at_k(a, c) for a, c in pairs) / len(pairs))
    assert shadow["rbo"] == pytest.approx(sum(rbo(a, c) for a, c in pairs) / len(pairs))
    # AND the candidate was calibrated for live signals on its golden set
    assert candidate.report is not None and candidate.report["weak_threshold"]["value"] > 0
    assert len(candidate.report["golden_queries"]["keys"]) == QUERIES


# ---- live changes, crashes, retries ---------------------------------------------------------------------


def test_edits_made_while_the_backfill_runs_are_all_in_the_new_generation(
    stack: LocalStack, golden: Golden, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a serving generation and a source app that edits while the third page is backfilled
    svc = stack.services()
    start_baseline(stack, golden, chunker=TRUNCATING)
    app = SourceWriter(stack)
    edits: dict[str, str] = {}

    def edit_during_backfill(number: int, gen: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if number == 3:
            done = sorted(e.doc_id for e in svc.ledger.scan(gen.id) if e.state == "committed")
            pending = sorted(set(golden.tenants) - set(done))
            edits.update(edited_done=done[0], deleted=done[1], revoked=done[2], edited_pending=pending[0])
            app.update(done[0], {"body": "Zebracorn quasarpine velvetmoss answer."})
            app.delete(done[1])
            app.update(done[2], {"acl": ["staff"]})
            app.update(pending[0], {"body": "Quokkafish marrowlight thimbleberry answer."})
            app.put(
                {
                    "doc_id": "new-doc",
                    "title": "Fresh",
                    "body": "Narwhalpie gloomcrest answer.",
                    "acl": ["public"],
                }
            )
        return items

    calls = intercept_pages(monkeypatch, edit_during_backfill)
    # WHEN the rebuild runs (pages of 4, one page per task) while the pumps sync the edits
    out = rebuild(stack, rebuild_input(golden, page_size=4, pages_per_task=1))
    # THEN the edits happened mid-backfill and the new generation, now serving, has every one
    assert len(calls) > 3 and edits
    assert out["decision"] == "promoted", out["evaluation"]["reasons"]
    candidate = svc.registry.get(out["generation_id"])
    assert alias_target(svc) == candidate.index_name
    version = {
        d: source_version(stack, d) for d in (edits["edited_done"], edits["edited_pending"], "new-doc")
    }
    assert (
        docs_found(svc, "zebracorn quasarpine velvetmoss").get(edits["edited_done"])
        == version[edits["edited_done"]]
    )
    assert (
        docs_found(svc, "quokkafish marrowlight").get(edits["edited_pending"])
        == version[edits["edited_pending"]]
    )
    assert docs_found(svc, "narwhalpie gloomcrest").get("new-doc") == version["new-doc"]
    assert edits["deleted"] not in {
        doc for _, fields in index_chunks(svc, candidate) for doc in [fields["doc_id"]]
    }
    revoked_query = app.table.get_item(Key={"doc_id": edits["revoked"]})["Item"]["title"]
    assert edits["revoked"] not in docs_found(svc, revoked_query, READER)
    assert edits["revoked"] in docs_found(svc, revoked_query, ["staff"])
    # AND the audit finds nothing stale, missing or orphaned in it
    audit = next(a for a in audit_now(svc).generations if a.generation == candidate.id)
    assert (audit.stale_documents, audit.missing_documents, audit.orphaned_vectors) == (0, 0, 0)


def audit_now(svc: Services) -> Any:
    return svc.audit()


def test_a_crash_in_the_middle_of_the_backfill_resumes_without_duplicate_work(
    stack: LocalStack, golden: Golden, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a serving generation, an embedder that records every text it embeds, and a crash
    # injected halfway through the third page of the first run (after half its docs were indexed)
    svc = stack.services()
    baseline = start_baseline(stack, golden, chunker=TRUNCATING)
    spec = spec_for("hash-256")
    counting = CountingEmbedder(get_embedder("hash-256"), record_texts=True)
    svc._embedders[spec.model_id] = counting
    crash = {"armed": True}

    def crash_mid_page(number: int, gen: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if crash["armed"] and number == 3:
            crash["armed"] = False
            steps_original(svc, gen, items[: len(items) // 2])
            raise RuntimeError("injected crash in the middle of a page")
        return items

    steps_original = steps._reconcile_page
    intercept_pages(monkeypatch, crash_mid_page)
    payload = rebuild_input(golden, page_size=4, pages_per_task=1)
    # WHEN the first run crashes
    with pytest.raises(RebuildFailed, match="injected crash") as failure:
        rebuild(stack, payload)
    # THEN the candidate is failed and out of the write targets; the active one never moved
    gen_id = next(g.id for g in svc.registry.list() if g.id != baseline.id)
    failed = svc.registry.get(gen_id)
    assert (failed.status, failed.write_target) == (GenerationStatus.FAILED, False)
    assert "injected crash" in (failed.report or {}).get("failed_reason", "")
    assert alias_target(svc) == baseline.index_name
    assert svc.registry.get(baseline.id).status is GenerationStatus.ACTIVE
    assert "RuntimeError" in str(failure.value)
    progress = BackfillProgress.from_record(failed.backfill)
    assert progress is not None and not progress.done
    # AND a doc already backfilled is edited while the candidate is out of the write targets
    app = SourceWriter(stack)
    backfilled = sorted(e.doc_id for e in svc.ledger.scan(gen_id) if e.state == "committed")[0]
    app.update(backfilled, {"body": "Lanternfish brambleroot answer."})
    stack.drain()

    # WHEN the run is started again with the same generation id
    out = rebuild(stack, {**payload, "generation_id": gen_id})
    # THEN it resumed (nothing recorded was done twice), caught up with the edit, and promoted
    assert out["decision"] == "promoted", out["evaluation"]["reasons"]
    assert out["register"]["resumed"] is True and out["register"]["docs_done"] > 0
    done = BackfillProgress.from_record(svc.registry.get(gen_id).backfill)
    assert done is not None and done.runs == 2 and done.done
    assert done.total("docs") == len(golden.tenants)  # every doc scanned into the record once
    # AND no chunk text was embedded twice (I4), across the crash and the resume
    assert counting.document_texts == len(set(counting.embedded_texts)) > 0
    # AND the index holds exactly the ledger's chunks: no duplicates, no strays, the edit in
    candidate = svc.registry.get(gen_id)
    stored = index_chunks(svc, candidate)
    ledger_ids = {chunk_id(e.doc_id, k) for e in svc.ledger.scan(gen_id) for k in e.chunk_keys}
    assert sorted(cid for cid, _ in stored) == sorted(ledger_ids)
    pairs = [(f["doc_id"], f["content_hash"]) for _, f in stored]
    assert len(pairs) == len(set(pairs))
    assert docs_found(svc, "lanternfish brambleroot").get(backfilled) == source_version(stack, backfilled)


def test_a_transient_error_in_a_page_is_retried_within_the_run(
    stack: LocalStack, golden: Golden, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a page that fails once with a transient error (OpenSearch answered 429, say)
    svc = stack.services()
    start_baseline(stack, golden, chunker=TRUNCATING)

    def throttled_once(number: int, gen: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if number == 2:
            raise TransientError("OpenSearch answered 429")
        return items

    calls = intercept_pages(monkeypatch, throttled_once)
    # WHEN the rebuild runs
    out = rebuild(stack, rebuild_input(golden))
    # THEN Step Functions retried the task and the same run finished
    assert out["decision"] == "promoted"
    progress = BackfillProgress.from_record(svc.registry.get(out["generation_id"]).backfill)
    assert progress is not None and progress.runs == 1 and progress.done
    failed_page = calls[1]
    assert failed_page in calls[2:]  # the same page, once more
    assert "TransientError" in task_errors(stack)


def test_catch_up_waits_while_jobs_are_pending(
    stack: LocalStack, golden: Golden, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a backlog in the jobs queue that drains over the first two catch-up checks
    start_baseline(stack, golden, chunker=TRUNCATING)
    backlog = [3, 1]
    real_depth = SqsJobQueue.depth
    monkeypatch.setattr(SqsJobQueue, "depth", lambda queue: backlog.pop(0) if backlog else real_depth(queue))
    # WHEN the rebuild runs
    out = rebuild(stack, rebuild_input(golden, catchup_wait_s=1))
    # THEN it waited twice (Wait with the input's seconds, then checked again) before evaluating
    assert out["decision"] == "promoted"
    entered = states_entered(stack)
    assert entered.count("CheckCatchUp") == 3
    assert entered.count("WaitForCatchUp") == 2
    assert entered.index("Evaluate") > max(i for i, name in enumerate(entered) if name == "WaitForCatchUp")


def test_a_candidate_that_never_catches_up_fails_and_the_active_one_keeps_serving(
    stack: LocalStack, golden: Golden, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a jobs queue that never drains
    svc = stack.services()
    baseline = start_baseline(stack, golden, chunker=TRUNCATING)
    monkeypatch.setattr(SqsJobQueue, "depth", lambda queue: 7)
    # WHEN the rebuild runs with at most two checks
    with pytest.raises(RebuildFailed, match="did not catch up after 2 checks: 7 jobs pending") as failure:
        rebuild(stack, rebuild_input(golden, catchup_wait_s=0, catchup_max_checks=2))
    # THEN it failed as not caught up, the candidate is out, and nothing was evaluated or promoted
    assert failure.value.error == "CatchUpTimeout"
    candidate = next(g for g in svc.registry.list() if g.id != baseline.id)
    assert (candidate.status, candidate.write_target) == (GenerationStatus.FAILED, False)
    assert alias_target(svc) == baseline.index_name
    assert "Evaluate" not in states_entered(stack)


# ---- reuse, approval, input, targeted backfill ---------------------------------------------------------


def test_a_chunker_only_rebuild_reuses_vectors_and_reports_it(stack: LocalStack, golden: Golden) -> None:
    # GIVEN a serving generation, and the golden set in S3 (where a deployed Lambda reads it)
    svc = stack.services()
    start_baseline(stack, golden)
    s3 = stack.client("s3")
    s3.create_bucket(Bucket="golden-sets")
    s3.upload_file(str(golden.queries), "golden-sets", "faq/queries.jsonl")
    s3.upload_file(str(golden.qrels), "golden-sets", "faq/qrels.tsv")
    example = load_event("rebuild_input_chunker_only")
    payload = rebuild_input(
        golden,
        chunker=example["chunker"],
        eval={"queries": "s3://golden-sets/faq/queries.jsonl", "qrels": "s3://golden-sets/faq/qrels.tsv"},
    )
    # WHEN only the chunker changes
    out = rebuild(stack, payload)
    # THEN chunk texts the model already embedded were reused, and the report says how many
    usage = out["evaluation"]["embeddings"]
    assert usage["reused"] > 0 and usage["computed"] > 0
    distinct = {f["content_hash"] for _, f in index_chunks(svc, svc.registry.get(out["generation_id"]))}
    assert usage["computed"] < len(distinct) <= usage["reused"] + usage["computed"]
    report = svc.registry.get(out["generation_id"]).report or {}
    assert report["embeddings"] == usage
    assert report["golden_set"] == "faq"
    assert f"{usage['reused']:,} reused, {usage['computed']:,} computed" in render_markdown_report(report)


def test_approval_holds_the_promotion_until_someone_approves(stack: LocalStack, golden: Golden) -> None:
    # GIVEN a rebuild that requires a person's approval
    svc = stack.services()
    baseline = start_baseline(stack, golden, chunker=TRUNCATING)
    sfn = stack.client("stepfunctions")
    with stack.background(interval_s=0.05):
        execution = start_rebuild(
            sfn,
            str(state_machine_arn(sfn)),
            rebuild_input(golden, require_approval=True, approval_timeout_s=120),
        )
        # WHEN the gate has passed
        gen_id = wait_until(lambda: _waiting_for_approval(svc, baseline.id))
        # THEN the execution waits and the alias has not moved
        assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
        assert alias_target(svc) == baseline.index_name
        # WHEN someone approves
        steps.answer_approval(svc, sfn, gen_id, approved=True, by="ops@example.com")
        out = wait_for_execution(sfn, execution, timeout_s=60)
    # THEN the candidate is promoted, and the approval is on its record
    assert out["decision"] == "promoted"
    assert alias_target(svc) == svc.registry.get(gen_id).index_name
    assert (svc.registry.get(gen_id).report or {})["approval"]["by"] == "ops@example.com"


def test_a_declined_or_unanswered_approval_rejects_the_candidate(stack: LocalStack, golden: Golden) -> None:
    # GIVEN a serving generation and rebuilds that pass the gate but need a person's approval
    svc = stack.services()
    baseline = start_baseline(stack, golden, chunker=TRUNCATING)
    sfn = stack.client("stepfunctions")
    machine = str(state_machine_arn(sfn))
    with stack.background(interval_s=0.05):
        # WHEN someone declines the first
        first = start_rebuild(sfn, machine, rebuild_input(golden, require_approval=True))
        declined = wait_until(lambda: _waiting_for_approval(svc, baseline.id))
        steps.answer_approval(svc, sfn, declined, approved=False, by="ops@example.com", reason="too slow")
        out_declined = wait_for_execution(sfn, first, timeout_s=60)
        # AND nobody answers the second within its timeout
        second = start_rebuild(
            sfn, machine, rebuild_input(golden, require_approval=True, approval_timeout_s=2)
        )
        out_unanswered = wait_for_execution(sfn, second, timeout_s=60)
    # THEN both were rejected with the reason, and the active generation never stopped serving
    assert out_declined["decision"] == out_unanswered["decision"] == "rejected"
    assert out_declined["reasons"] == ["not approved by ops@example.com"]
    assert out_unanswered["reasons"] == ["no approval decision within approval_timeout_s"]
    assert alias_target(svc) == baseline.index_name
    assert svc.registry.get(declined).status is GenerationStatus.FAILED
    assert svc.registry.get(out_unanswered["generation_id"]).status is GenerationStatus.FAILED
    # AND a late answer is refused instead of reaching a finished execution
    with pytest.raises(DynembedError, match="is not waiting for an approval"):
        steps.answer_approval(svc, sfn, out_unanswered["generation_id"], approved=True, by="late")


def _waiting_for_approval(svc: Services, baseline_id: str) -> str | None:
    for gen in svc.registry.list():
        if gen.id != baseline_id and ((gen.report or {}).get("approval") or {}).get("task_token"):
            return gen.id
    return None


def wait_until(probe: Callable[[], str | None], timeout_s: float = 60.0) -> str:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_invalid_input_fails_before_anything_is_created(stack: LocalStack) -> None:
    svc = stack.services()
    with pytest.raises(RebuildFailed) as failure:
        run_rebuild(stack, {"model": "no-such-model", "chunker": {"target_char": 5}}, timeout_s=60)
    assert failure.value.error == "ConfigError"
    assert "model: unknown embedding model 'no-such-model'" in str(failure.value)
    assert "chunker.target_char: unknown field" in str(failure.value)
    assert svc.registry.list() == []


def test_a_serving_generation_id_cannot_be_rebuilt_and_is_left_alone(
    stack: LocalStack, golden: Golden
) -> None:
    # GIVEN an active generation and a standby with the model and chunker of the input
    svc = stack.services()
    start_baseline(stack, golden)
    standby = new_generation(
        spec_for("hash-256"), ChunkerSpec(), svc.settings.index_prefix, generation_id="old"
    )
    create(svc.registry, svc.index, standby)
    svc.registry.update(standby.id, status=GenerationStatus.STANDBY, write_target=True)
    # WHEN a rebuild names the standby's id
    with pytest.raises(
        RebuildFailed, match="only a building, evaluating or failed generation can be resumed"
    ):
        run_rebuild(stack, rebuild_input(golden, generation_id="old"), timeout_s=60)
    # THEN the failure path did not touch it: still standby, still a write target (rollback intact)
    kept = svc.registry.get("old")
    assert (kept.status, kept.write_target) == (GenerationStatus.STANDBY, True)


def test_targeted_backfill_reconciles_one_tenant_into_the_write_targets(
    stack: LocalStack, golden: Golden
) -> None:
    # GIVEN a serving generation and a second, empty write target
    svc = stack.services()
    start_baseline(stack, golden)
    empty = new_generation(spec_for("hash-256"), ChunkerSpec(target_chars=500), svc.settings.index_prefix)
    create(svc.registry, svc.index, empty)
    svc.registry.update(empty.id, write_target=True)
    # WHEN ops invoke the workflow function with the targeted-backfill event for one tenant
    event = {**load_event("targeted_backfill"), "tenant": "faq-a"}
    response = stack.client("lambda").invoke(FunctionName="dynembed-workflow", Payload=json.dumps(event))
    result = json.loads(response["Payload"].read())
    stack.drain()
    # THEN that tenant's docs, and only those, went through the queue into the write targets
    tenant_docs = {d for d, t in golden.tenants.items() if t == "faq-a"}
    assert result["jobs_enqueued"] == len(tenant_docs)
    assert {e.doc_id for e in svc.ledger.scan(empty.id)} == tenant_docs
    assert {f["doc_id"] for _, f in index_chunks(svc, svc.registry.get(empty.id))} == tenant_docs
