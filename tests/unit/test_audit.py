"""The audit flow on fakes (``dynembed.audit.run``): source vs ledger vs index per write target,
counting orphaned, stale, missing and duplicate chunks, and repairing them when asked."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import pytest

from dynembed.audit.run import AuditReport, publish
from dynembed.core.config import METRICS
from dynembed.core.models import ChunkDocument, GenerationStatus
from dynembed.core.telemetry import Telemetry
from dynembed.rebuild.generations import create, new_generation
from tests.fakes import RecordingMetricsSink
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit

BODY = paragraphs("alpha", "bravo")
ZERO = {
    "orphaned_vectors": 0,
    "stale_documents": 0,
    "missing_documents": 0,
    "duplicate_chunks": 0,
    "malformed_items": 0,
    "regressed_documents": 0,
}


def synced(*doc_ids: str) -> Harness:
    h = Harness()
    for doc_id in doc_ids:
        h.write(doc_id, body=BODY.replace("alpha", doc_id))
    h.run()
    return h


def audit(h: Harness, **options: Any) -> AuditReport:
    report: AuditReport = h.services().audit(queue=h.queue, **options)
    return report


def counts(report: AuditReport) -> dict[str, float]:
    return {k: v for k, v in report.totals().items() if k != "freshness_lag_s"}


def stray_chunk(h: Harness, doc_id: str, key: str, content_hash: str = "h-stray") -> ChunkDocument:
    doc = ChunkDocument(
        doc_id=doc_id,
        chunk_key=key,
        chunk_index=0,
        text="stray",
        content_hash=content_hash,
        embedding=[1.0] + [0.0] * (h.generation.model.dimension - 1),
        source_version=1,
        indexed_at=0.0,
        model_id=h.generation.model.model_id,
        chunker_version=h.generation.chunker.version,
        schema_version=1,
        generation=h.generation.id,
        acl=["public"],
    )
    h.index.write_chunks(h.generation.index_name, [doc])
    return doc


def test_a_synced_pipeline_has_no_drift() -> None:
    h = synced("d1", "d2")
    report = audit(h)
    assert counts(report) == ZERO and report.complete
    [gen] = report.generations
    assert (gen.generation, gen.source_docs, gen.indexed_docs, gen.chunks) == (
        h.generation.id,
        2,
        2,
        len(h.indexed()),
    )
    assert report.to_dict()["totals"]["stale_documents"] == 0


def test_chunks_of_deleted_docs_and_unaccounted_chunks_are_orphans_and_repair_deletes_them() -> None:
    # GIVEN a chunk of a doc the source no longer has, and a chunk no ledger entry accounts for
    h = synced("d1")
    stray_chunk(h, "gone", "k0")
    stray_chunk(h, "d1", "unknown-key")
    # WHEN audited  THEN both are orphans, named as examples
    report = audit(h)
    assert counts(report) == {**ZERO, "orphaned_vectors": 2}
    assert sorted(report.generations[0].examples["orphaned"]) == ["d1:unknown-key", "gone:k0"]
    # WHEN audited with repair  THEN they are deleted and the next audit is clean
    assert audit(h, repair=True).orphans_deleted == 2
    assert counts(audit(h)) == ZERO
    assert h.differences()["orphaned"] == []


def test_a_doc_changed_without_a_sync_is_stale_and_repair_enqueues_a_forced_job() -> None:
    # GIVEN an indexed doc whose source moved on to version 2 unseen (a lost stream record)
    h = synced("d1")
    h.source.items["d1"] = {**h.source.items["d1"], "version": 2, "updated_at": 1000.0}
    # WHEN audited at t=1600 with repair
    report = audit(h, repair=True, clock=lambda: 1600.0)
    # THEN it is stale, lagging 600 s, and one forced job at version 2 is enqueued
    assert counts(report) == {**ZERO, "stale_documents": 1}
    assert report.totals()["freshness_lag_s"] == 600.0
    assert report.repairs_enqueued == 1
    [job] = h.queue.sent
    assert (job.doc_id, job.min_source_version, job.force, job.reason) == ("d1", 2, True, "audit repair")
    # AND once that job is reconciled the audit is clean
    h.sync()
    assert counts(audit(h)) == ZERO


def test_a_doc_never_indexed_is_missing() -> None:
    h = synced("d1")
    h.source.items["new"] = {"doc_id": "new", "version": 1, "body": BODY, "acl": ["public"]}
    report = audit(h)
    assert counts(report) == {**ZERO, "missing_documents": 1}
    assert report.generations[0].examples["missing"] == ["new"]
    assert report.repairs_enqueued == 0 and h.queue.sent == []  # no repair unless asked


def test_one_text_indexed_twice_for_a_doc_is_a_duplicate() -> None:
    h = synced("d1")
    real = next(iter(h.indexed().values()))
    stray_chunk(h, "d1", "copy", content_hash=real["content_hash"])
    assert audit(h).totals()["duplicate_chunks"] == 1


def test_every_write_target_is_audited_and_others_are_not() -> None:
    # GIVEN a candidate that is a write target but empty, and a failed one that is not
    h = synced("d1")
    create(h.registry, h.index, new_generation(h.embedder.spec, h.chunker, "chunks", generation_id="cand"))
    h.registry.update("cand", write_target=True)
    create(h.registry, h.index, new_generation(h.embedder.spec, h.chunker, "chunks", generation_id="dead"))
    h.registry.update("dead", status=GenerationStatus.FAILED)
    report = audit(h)
    assert sorted(g.generation for g in report.generations) == ["cand", h.generation.id]
    cand = next(g for g in report.generations if g.generation == "cand")
    assert cand.missing_documents == 1


def test_a_sample_audits_the_docs_its_hash_bucket_selects() -> None:
    # GIVEN 20 docs, 5 of them missing from the index
    h = synced(*[f"d{i}" for i in range(15)])
    for i in range(15, 20):
        h.source.items[f"d{i}"] = {"doc_id": f"d{i}", "version": 1, "body": BODY, "acl": ["public"]}
    # WHEN a 50% sample is audited
    report = audit(h, sample=0.5)

    # THEN exactly the docs whose sha256 bucket is under 0.5 are counted (independent oracle)
    def chosen(doc_id: str) -> bool:
        return int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < 0.5

    [gen] = report.generations
    assert gen.source_docs == sum(chosen(f"d{i}") for i in range(20))
    assert gen.missing_documents == sum(chosen(f"d{i}") for i in range(15, 20))
    assert report.sampled == 0.5


def test_an_audit_out_of_time_says_it_is_incomplete() -> None:
    h = synced("d1", "d2", "d3")
    ticks = itertools.count(0.0, 10.0)
    report = audit(h, time_budget_s=15.0, clock=lambda: next(ticks))
    assert report.complete is False


def test_totals_reach_telemetry_and_the_metrics_sink() -> None:
    h = synced("d1")
    stray_chunk(h, "gone", "k0")
    report = audit(h)
    assert h.telemetry.get(METRICS.orphaned_vectors) == 1

    sink = RecordingMetricsSink()
    publish(report, Telemetry(sink=sink))
    # Zero gauges are published too, so an alarm clears once the drift is gone.
    assert {name: value for name, value, _unit, _dims in sink.points} == {
        METRICS.orphaned_vectors: 1,
        METRICS.stale_documents: 0,
        METRICS.missing_documents: 0,
        METRICS.audit_freshness_lag: 0.0,
        METRICS.malformed_items: 0,
    }
