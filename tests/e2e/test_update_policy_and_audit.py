"""Batched update policy (coalescing, freshness per policy), the audit with planted drift, and the
search Lambda, on the local stack (real handlers, moto, osmem)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from dynembed.core.config import METRICS
from dynembed.core.models import ChunkDocument, chunk_id
from dynembed.core.ports import LedgerEntry
from dynembed.core.schema import SourceSchema, UpdatePolicy
from dynembed.core.versioning import WriteRank, external_version
from dynembed.sync.chunking import chunker_for
from dynembed_ops.local.lambda_runtime import invoke
from dynembed_ops.local.stack import LocalStack
from dynembed_ops.source_app import SourceApp, source_app_for

pytestmark = pytest.mark.e2e

SCHEMA = SourceSchema(
    policies={"tenant:catalog": UpdatePolicy(mode="batched", max_delay_seconds=2, max_held_jobs=1000)},
)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(schema=SCHEMA) as local:
        local.services().bootstrap("hash-256", generation_id="g-pol")
        yield local


def _app(stack: LocalStack) -> SourceApp:
    app: SourceApp = source_app_for(stack.services())
    return app


def test_batched_policy_coalesces_edits_and_delays_them(stack: LocalStack) -> None:
    svc = stack.services()
    app = _app(stack)
    tel = svc.telemetry
    # GIVEN ten edits of one catalog doc and one edit of an immediate doc
    for n in range(10):
        app.put(
            {
                "doc_id": "sku-1",
                "title": "Kettle",
                "body": f"Kettle, price revision {n}",
                "acl": ["public"],
                "tenant": "catalog",
            }
        )
    app.put(
        {"doc_id": "news-1", "title": "News", "body": "Fresh news item", "acl": ["public"], "tenant": "news"}
    )
    before = tel.get(METRICS.embeddings_computed)
    started = len(tel.freshness_s)
    stack.drain()
    # THEN the immediate doc is indexed at once, the catalog doc is held (one held job)
    assert svc.ledger.get("news-1", "g-pol") is not None
    assert svc.ledger.get("sku-1", "g-pol") is None
    assert svc.held.count() == 1
    immediate_lag = tel.freshness_s[started:]
    # WHEN the drain runs after the policy's delay
    time.sleep(2.1)
    stack.flush_held()
    stack.drain()
    # THEN one reconcile indexed the newest version (ten edits, one embedding pass)
    entry = svc.ledger.get("sku-1", "g-pol")
    assert entry is not None and entry.source_version == app.next_version("sku-1") - 1
    assert tel.get(METRICS.embeddings_computed) - before == 2  # one chunk each for news-1 and sku-1
    batched_lag = tel.freshness_s[started + len(immediate_lag) :]
    assert max(immediate_lag) < 2.0 <= min(batched_lag)  # the delay each policy gives, measured


def test_access_changes_are_never_batched(stack: LocalStack) -> None:
    svc = stack.services()
    _app(stack).update("sku-1", {"acl": ["staff"]})
    stack.drain()  # no flush of held jobs
    stored = svc.index.get_chunks(
        svc.settings.index_alias, [chunk_id("sku-1", k) for k in svc.ledger.get("sku-1", "g-pol").chunk_keys]
    )  # type: ignore[union-attr]
    assert stored and all(s["acl"] == ["staff"] for s in stored.values())


def test_audit_finds_planted_orphans_stale_and_missing_and_repairs_them(stack: LocalStack) -> None:
    svc = stack.services()
    app = _app(stack)
    for n in range(3):
        app.put(
            {
                "doc_id": f"a{n}",
                "title": f"Doc {n}",
                "body": f"Body of document number {n}",
                "acl": ["public"],
            }
        )
    stack.drain()
    gen = svc.registry.get("g-pol")
    # Plant: an orphan chunk of a doc not in the source, a stale doc, a missing doc.
    orphan = ChunkDocument(
        doc_id="ghost",
        chunk_key="k",
        chunk_index=0,
        text="boo",
        content_hash="h",
        embedding=[0.0] * 255 + [1.0],
        source_version=1,
        indexed_at=time.time(),
        model_id=gen.model.model_id,
        chunker_version="x",
        schema_version=1,
        generation=gen.id,
        acl=["public"],
    )
    svc.index.write_chunks(gen.index_name, [orphan], [external_version(1, WriteRank.CONTENT)])
    a1 = svc.source.get_item("a1")
    svc.source.table.put_item(
        Item={**a1, "version": int(a1["version"]) + 1, "body": "changed behind our back"}
    )
    # a3: in the source and the ledger but never reached the index (as after an index restore)
    a3 = {**svc.source.get_item("a2"), "doc_id": "a3", "body": "A document the index lost"}
    svc.source.table.put_item(Item=a3)
    keys = [c.key for c in chunker_for(gen.chunker).chunk(svc.schema.content_of(a3))]
    svc.ledger.commit(
        LedgerEntry("a3", gen.id, source_version=int(a3["version"]), chunk_keys=keys, state="committed")
    )
    # the stream would fix a1 on its own: drop its pending stream records to keep the drift
    stack.stream_pump._fetch()  # type: ignore[union-attr]
    stack.stream_pump._buffer.clear()  # type: ignore[union-attr]
    report = svc.audit()
    totals = report.totals()
    assert (totals["orphaned_vectors"], totals["stale_documents"], totals["missing_documents"]) == (1, 1, 1)
    assert report.generations[0].examples["missing"] == ["a3"]
    # WHEN repairing
    repaired = svc.audit(queue=svc.queue, repair=True)
    assert (repaired.repairs_enqueued, repaired.orphans_deleted) == (2, 1), repaired.to_dict()
    stack.drain()
    after = svc.audit()
    assert (
        after.totals()["orphaned_vectors"],
        after.totals()["stale_documents"],
        after.totals()["missing_documents"],
    ) == (0, 0, 0), after.to_dict()


def test_search_lambda_returns_provenance_and_rejects_bad_input(stack: LocalStack) -> None:
    result = invoke("search", {"text": "fresh news", "principal": "anyone", "k": 3})
    assert result["results"][0]["doc_id"] == "news-1"
    assert result["results"][0]["model_id"] == "hash/hash-256@1:256"
    with pytest.raises(Exception, match="k"):
        invoke("search", {"text": "fresh news", "principal": "anyone", "k": 0})
