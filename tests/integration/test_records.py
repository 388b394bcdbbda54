"""Ledger, registry, embedding cache and held jobs on DynamoDB (moto): conditional writes keep
versions rising, and a doc deleted at v cannot be brought back by a reconcile of v."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dynembed.adapters.dynamodb.cache import DynamoEmbeddingCache
from dynembed.adapters.dynamodb.held_jobs import DynamoHeldJobs
from dynembed.adapters.dynamodb.ledger import DynamoLedger
from dynembed.adapters.dynamodb.registry import DynamoProgressStore, DynamoRegistry
from dynembed.core.errors import UnknownGenerationError, VersionConflictError
from dynembed.core.models import ChunkerSpec, GenerationStatus, ModelSpec, ReconcileJob
from dynembed.core.ports import LedgerEntry
from dynembed.rebuild.generations import new_generation
from dynembed.rebuild.progress import BackfillProgress

pytestmark = pytest.mark.integration
REGION = "us-east-1"


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        for name, keys in [
            ("ledger", [("doc_id", "HASH"), ("generation", "RANGE")]),
            ("registry", [("generation_id", "HASH")]),
            ("cache", [("cache_key", "HASH")]),
            ("held", [("doc_id", "HASH")]),
        ]:
            ddb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
                AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
                BillingMode="PAY_PER_REQUEST",
            )
        yield


def test_ledger_versions_only_rise(tables: None) -> None:
    ledger = DynamoLedger("ledger", region=REGION)
    # GIVEN pending keys written ahead of the index, then a commit at version 5
    ledger.begin("d1", "g1", ["k1", "k2"], 5)
    assert ledger.get("d1", "g1").pending_keys == ["k1", "k2"]  # type: ignore[union-attr]
    ledger.commit(
        LedgerEntry("d1", "g1", source_version=5, chunk_keys=["k1", "k2"], pending_keys=["k1", "k2"])
    )
    entry = ledger.get("d1", "g1")
    assert (
        entry is not None
        and entry.source_version == 5
        and entry.pending_keys == []
        and entry.chunk_keys == ["k1", "k2"]
    )
    # WHEN an older reconcile tries to begin or commit
    with pytest.raises(VersionConflictError):
        ledger.begin("d1", "g1", ["old"], 4)
    with pytest.raises(VersionConflictError):
        ledger.commit(LedgerEntry("d1", "g1", source_version=4, chunk_keys=["old"]))
    # THEN the ledger still holds version 5; an equal version (redelivery) is accepted
    ledger.commit(LedgerEntry("d1", "g1", source_version=5, chunk_keys=["k1", "k2"]))
    assert ledger.get_many([("d1", "g1"), ("nope", "g1")]).keys() == {("d1", "g1")}


def test_a_delete_at_v_blocks_a_reconcile_of_v_but_not_of_v_plus_1(tables: None) -> None:
    ledger = DynamoLedger("ledger", region=REGION)
    ledger.commit(LedgerEntry("d1", "g1", source_version=3, chunk_keys=["k"]))
    ledger.commit(
        LedgerEntry("d1", "g1", source_version=3, chunk_keys=[], pending_keys=["k"], state="deleted")
    )
    with pytest.raises(VersionConflictError):
        ledger.begin("d1", "g1", ["k"], 3)
    with pytest.raises(VersionConflictError):
        ledger.commit(LedgerEntry("d1", "g1", source_version=3, chunk_keys=["k"]))
    ledger.begin("d1", "g1", ["k"], 4)
    ledger.commit(LedgerEntry("d1", "g1", source_version=4, chunk_keys=["k"], pending_keys=["k"]))
    assert ledger.get("d1", "g1").state == "committed"  # type: ignore[union-attr]


def test_registry_roundtrip_and_errors(tables: None) -> None:
    registry = DynamoRegistry("registry", region=REGION)
    spec = ModelSpec(provider="hash", name="hash-256", dimension=256)
    gen = new_generation(spec, ChunkerSpec(), "chunks", generation_id="g1")
    registry.create(gen)
    registry.create(gen.model_copy(update={"index_name": "other"}))  # idempotent: first one stays
    assert registry.get("g1").index_name == "chunks-g1"
    updated = registry.update("g1", status=GenerationStatus.ACTIVE, write_target=True, report={"ndcg": 0.5})
    assert (updated.status, updated.write_target, updated.report) == (
        GenerationStatus.ACTIVE,
        True,
        {"ndcg": 0.5},
    )
    assert [g.id for g in registry.list() if g.write_target] == ["g1"]
    with pytest.raises(UnknownGenerationError, match=r"g9.*known: g1"):
        registry.get("g9")
    with pytest.raises(UnknownGenerationError):
        registry.update("g9", status="failed")
    with pytest.raises(ValueError, match="index_name"):
        registry.update("g1", index_name="x")


def test_embedding_cache_roundtrip(tables: None) -> None:
    cache = DynamoEmbeddingCache("cache", region=REGION)
    cache.put_many("m@1", {"h1": [0.5, 0.25], "h2": [1.0, 0.0]})
    assert cache.get_many("m@1", ["h1", "h2", "h3"]) == {"h1": [0.5, 0.25], "h2": [1.0, 0.0]}
    assert cache.get_many("other-model", ["h1"]) == {}


def test_held_jobs_coalesce_per_doc(tables: None) -> None:
    held = DynamoHeldJobs("held", region=REGION)
    for version in range(1, 11):
        held.hold(
            ReconcileJob(doc_id="d1", min_source_version=version, source_updated_at=100.0 + version),
            60,
            now=1000.0,
        )
    assert held.count() == 1
    assert held.due(now=1030.0) == []
    ((job, edits),) = held.due(now=1061.0)
    assert (job.min_source_version, edits, job.source_updated_at) == (10, 10, 101.0)
    held.hold(ReconcileJob(doc_id="d1", min_source_version=11), 60, now=1062.0)
    assert held.release(job) is False  # a newer edit arrived: it stays held
    assert held.count() == 1


def test_a_first_reconcile_takes_the_put_path_and_a_racing_writer_sends_it_back_to_updates(
    tables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = DynamoLedger("ledger", region=REGION)
    updates: list[str] = []
    real_update = ledger.model.update

    def counted_update(row: Any, *args: Any, **kwargs: Any) -> Any:
        updates.append(row.doc_id)
        return real_update(row, *args, **kwargs)

    monkeypatch.setattr(ledger.model, "update", counted_update)
    # GIVEN rows the batch read did not find
    assert ledger.get_many([("d1", "g1"), ("d2", "g1"), ("d3", "g1")]) == {}
    # WHEN d1 is begun and committed with nobody else about
    ledger.begin("d1", "g1", ["a", "b", "c"], 1)
    ledger.commit(
        LedgerEntry("d1", "g1", source_version=1, chunk_keys=["a", "b", "c"], pending_keys=["c", "a", "b"])
    )
    # THEN both writes were puts (no UpdateItem), and the row ends as the update path leaves one
    assert updates == []
    d1 = ledger.get("d1", "g1")
    assert d1 is not None
    assert (d1.source_version, d1.chunk_keys, d1.pending_keys, d1.state) == (
        1,
        ["a", "b", "c"],
        [],
        "committed",
    )
    # WHEN a newer run of d2 adds its own pending keys between this run's begin and commit
    ledger.begin("d2", "g1", ["old"], 1)
    other = DynamoLedger("ledger", region=REGION)  # another Lambda instance
    other.begin("d2", "g1", ["new"], 2)
    ledger.commit(LedgerEntry("d2", "g1", source_version=1, chunk_keys=["old"], pending_keys=["old"]))
    # THEN only this run's key is cleared: the newer run's stays pending (the put was refused)
    d2 = ledger.get("d2", "g1")
    assert d2 is not None and d2.pending_keys == ["new"] and d2.source_version == 1
    # WHEN d3 was committed at version 5 by someone else after the read that missed it
    DynamoLedger("ledger", region=REGION).commit(LedgerEntry("d3", "g1", source_version=5, chunk_keys=["x"]))
    # THEN an older begin still conflicts (the create was refused, the update's condition holds)
    with pytest.raises(VersionConflictError):
        ledger.begin("d3", "g1", ["y"], 4)


def test_retiring_a_generation_deletes_its_ledger_rows_only(tables: None) -> None:
    # GIVEN ledger rows of two generations
    ledger = DynamoLedger("ledger", region=REGION)
    for doc in ("d1", "d2", "d3"):
        ledger.commit(LedgerEntry(doc, "old", source_version=1, chunk_keys=["k"]))
    ledger.commit(LedgerEntry("d1", "new", source_version=1, chunk_keys=["k"]))
    # WHEN one generation's rows are deleted
    removed = ledger.delete_generation("old")
    # THEN they are gone and counted, and the other generation's stay
    assert removed == 3
    assert list(ledger.scan("old")) == []
    assert [e.doc_id for e in ledger.scan("new")] == ["d1"]


def test_backfill_progress_is_a_compare_and_set_on_the_registry_item(tables: None) -> None:
    # GIVEN a registered generation with no progress yet
    registry = DynamoRegistry("registry", region=REGION)
    spec = ModelSpec(provider="hash", name="hash-256", dimension=256)
    registry.create(new_generation(spec, ChunkerSpec(), "chunks", generation_id="g1"))
    store = DynamoProgressStore("registry", region=REGION)
    assert store.load("g1") is None
    # WHEN progress starts, and a writer whose read went stale races another one
    store.change("g1", lambda p: BackfillProgress.fresh(2, 10))
    seen: list[int] = []

    def stale_then_fresh(progress: BackfillProgress | None) -> BackfillProgress:
        assert progress is not None
        seen.append(progress.runs)
        if len(seen) == 1:  # another writer commits between this read and this write
            store.change("g1", lambda p: p.model_copy(update={"runs": 5}))  # type: ignore[union-attr]
        return progress.model_copy(update={"runs": progress.runs + 1})

    result = store.change("g1", stale_then_fresh)
    # THEN the stale write was refused and retried on the newer value: no update lost
    assert seen == [1, 5] and result.runs == 6
    assert store.load("g1") == result and registry.get("g1").backfill == result.record()
    with pytest.raises(UnknownGenerationError):
        store.load("g9")
