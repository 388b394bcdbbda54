"""Ledger, registry, embedding cache and held jobs on DynamoDB (moto): conditional writes keep
versions rising, and a doc deleted at v cannot be brought back by a reconcile of v."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from dynembed.adapters.dynamodb import DynamoEmbeddingCache, DynamoHeldJobs, DynamoLedger, DynamoRegistry
from dynembed.core.errors import UnknownGenerationError, VersionConflictError
from dynembed.core.models import ChunkerSpec, GenerationStatus, ModelSpec, ReconcileJob
from dynembed.core.ports import LedgerEntry
from dynembed.rebuild.generations import new_generation

pytestmark = pytest.mark.integration


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
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
    ledger = DynamoLedger("ledger")
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
    ledger = DynamoLedger("ledger")
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
    registry = DynamoRegistry("registry")
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
    assert registry.active() is not None and registry.write_targets()[0].id == "g1"
    with pytest.raises(UnknownGenerationError, match=r"g9.*known: g1"):
        registry.get("g9")
    with pytest.raises(UnknownGenerationError):
        registry.update("g9", status="failed")
    with pytest.raises(ValueError, match="index_name"):
        registry.update("g1", index_name="x")


def test_embedding_cache_roundtrip(tables: None) -> None:
    cache = DynamoEmbeddingCache("cache")
    cache.put_many("m@1", {"h1": [0.5, 0.25], "h2": [1.0, 0.0]})
    assert cache.get_many("m@1", ["h1", "h2", "h3"]) == {"h1": [0.5, 0.25], "h2": [1.0, 0.0]}
    assert cache.get_many("other-model", ["h1"]) == {}


def test_held_jobs_coalesce_per_doc(tables: None) -> None:
    held = DynamoHeldJobs("held")
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


def test_a_first_reconcile_takes_the_put_path_and_a_racing_writer_sends_it_back_to_updates(tables: None) -> None:
    ledger = DynamoLedger("ledger")
    # GIVEN rows the batch read did not find
    assert ledger.get_many([("d1", "g1"), ("d2", "g1"), ("d3", "g1")]) == {}
    # WHEN d1 is begun and committed with nobody else about
    ledger.begin("d1", "g1", ["a", "b"], 1)
    ledger.commit(LedgerEntry("d1", "g1", source_version=1, chunk_keys=["a", "b"], pending_keys=["a", "b"]))
    # THEN it ends exactly as the update path leaves a row
    d1 = ledger.get("d1", "g1")
    assert d1 is not None and (d1.source_version, d1.chunk_keys, d1.pending_keys, d1.state) == (1, ["a", "b"], [], "committed")
    # WHEN a newer run of d2 adds its own pending keys between this run's begin and commit
    ledger.begin("d2", "g1", ["old"], 1)
    other = DynamoLedger("ledger")  # another Lambda instance
    other.begin("d2", "g1", ["new"], 2)
    ledger.commit(LedgerEntry("d2", "g1", source_version=1, chunk_keys=["old"], pending_keys=["old"]))
    # THEN only this run's key is cleared: the newer run's stays pending (the put was refused)
    d2 = ledger.get("d2", "g1")
    assert d2 is not None and d2.pending_keys == ["new"] and d2.source_version == 1
    # WHEN d3 was committed at version 5 by someone else after the read that missed it
    DynamoLedger("ledger").commit(LedgerEntry("d3", "g1", source_version=5, chunk_keys=["x"]))
    # THEN an older begin still conflicts (the create was refused, the update's condition holds)
    with pytest.raises(VersionConflictError):
        ledger.begin("d3", "g1", ["y"], 4)
