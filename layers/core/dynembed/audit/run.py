"""The audit (DESIGN.md flow 4): compare source, ledger and index for each write target and
count what drifted. Full or sampled, bounded in time; optionally repairs what it found by
enqueuing reconcile jobs (stale, missing) and deleting stray chunks (orphans)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dynembed.core.config import METRICS
from dynembed.core.models import Generation, ReconcileJob, chunk_id, is_sentinel
from dynembed.core.ports import ChunkIndex, JobQueue, Ledger, LedgerEntry, Registry, SourceReader
from dynembed.core.schema import SourceSchema
from dynembed.core.source_scan import LiveDoc, live_documents
from dynembed.core.telemetry import Telemetry
from dynembed.core.versioning import WriteRank, external_version


@dataclass
class GenerationAudit:
    generation: str
    source_docs: int = 0
    indexed_docs: int = 0
    chunks: int = 0
    orphaned_vectors: int = 0
    """Chunks of docs gone from the source, or chunks no ledger entry accounts for."""
    stale_documents: int = 0
    """Live docs whose indexed version is older than the source version."""
    missing_documents: int = 0
    """Live docs with content but no chunk in the index."""
    duplicate_chunks: int = 0
    """The same (doc, text) indexed under more than one id."""
    regressed_documents: int = 0
    """Live docs whose source version is below the indexed one: the source went back, and the
    index keeps the newer content (it cannot go back) until a write above it."""
    freshness_lag_s: float = 0.0
    """Age of the oldest source change not yet indexed."""
    examples: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class AuditReport:
    generations: list[GenerationAudit]
    sampled: float
    complete: bool
    """False when the time budget ran out before every doc was compared."""
    repairs_enqueued: int = 0
    orphans_deleted: int = 0
    seconds: float = 0.0
    malformed_items: int = 0
    """Source items that break the schema's attribute rules: not indexed, their chunks not
    served (any still in the index count as orphaned vectors, and a repair deletes them)."""
    malformed_examples: list[str] = field(default_factory=list)
    """Their reasons (each names the doc and the attribute), up to ``max_examples``."""

    def totals(self) -> dict[str, float]:
        keys = (
            "orphaned_vectors",
            "stale_documents",
            "missing_documents",
            "duplicate_chunks",
            "regressed_documents",
        )
        out: dict[str, float] = {k: sum(getattr(g, k) for g in self.generations) for k in keys}
        out["freshness_lag_s"] = max((g.freshness_lag_s for g in self.generations), default=0.0)
        out["malformed_items"] = self.malformed_items
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "totals": self.totals()}


def _in_sample(doc_id: str, fraction: float) -> bool:
    if is_sentinel(doc_id):
        return False  # the sentinel's own item comes and goes by design: not drift
    if fraction >= 1.0:
        return True
    bucket = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction


def run_audit(
    *,
    schema: SourceSchema,
    source: SourceReader,
    ledger: Ledger,
    registry: Registry,
    index: ChunkIndex,
    queue: JobQueue | None = None,
    repair: bool = False,
    delete_orphans: bool | None = None,  # None: as ``repair``; the deployed audit (read-only) passes False
    sample: float = 1.0,
    time_budget_s: float = 600.0,
    telemetry: Telemetry | None = None,
    clock: Callable[[], float] = time.time,
    max_examples: int = 5,
) -> AuditReport:
    delete_orphans = repair if delete_orphans is None else delete_orphans
    started = clock()
    deadline = started + time_budget_s
    scan = live_documents(
        schema, source, include=lambda doc_id: _in_sample(doc_id, sample), stop=lambda: clock() > deadline
    )
    complete, live = scan.complete, scan.docs

    audits: list[GenerationAudit] = []
    stale_or_missing: set[str] = set()
    orphans_deleted = 0
    for gen in [g for g in registry.list() if g.write_target]:
        found = _audit_generation(gen, live, ledger, index, sample, clock, deadline, max_examples)
        complete = complete and found.complete
        stale_or_missing |= found.stale_or_missing
        if repair and delete_orphans and found.strays:
            orphans_deleted += _delete_strays(index, gen.index_name, found.strays)
        audits.append(found.audit)

    repairs = _enqueue_repairs(queue, live, stale_or_missing) if repair and queue is not None else 0

    report = AuditReport(
        generations=audits,
        sampled=sample,
        complete=complete,
        repairs_enqueued=repairs,
        orphans_deleted=orphans_deleted,
        seconds=round(clock() - started, 3),
        malformed_items=len(scan.malformed),
        malformed_examples=scan.malformed[:max_examples],
    )
    if telemetry is not None:
        publish(report, telemetry)
    return report


_Chunks = dict[str, list[tuple[str, dict[str, Any]]]]
"""doc id → its indexed chunks, each as (chunk id, stored fields)."""


@dataclass
class _Findings:
    """One generation's counts, plus what a repair would act on."""

    audit: GenerationAudit
    stale_or_missing: set[str]
    """Live doc ids a forced reconcile would fix."""
    strays: list[tuple[str, int]]
    """Orphaned chunks as (chunk id, source version)."""
    complete: bool
    """False when the deadline cut the index read short."""


def _audit_generation(
    gen: Generation,
    live: dict[str, LiveDoc],
    ledger: Ledger,
    index: ChunkIndex,
    sample: float,
    clock: Callable[[], float],
    deadline: float,
    max_examples: int,
) -> _Findings:
    """Compare the (sampled) source against one generation's ledger and index."""
    audit = GenerationAudit(generation=gen.id, source_docs=len(live))
    entries = {e.doc_id: e for e in ledger.scan(gen.id) if _in_sample(e.doc_id, sample)}
    by_doc, complete = _indexed_chunks_by_doc(index, gen.index_name, sample, clock, deadline)
    audit.indexed_docs = len(by_doc)
    audit.chunks = sum(len(v) for v in by_doc.values())
    now = clock()
    strays = _count_orphans_and_duplicates(audit, by_doc, entries, live, max_examples)
    stale_or_missing = _count_live_drift(audit, live, entries, by_doc, now, max_examples)
    return _Findings(audit, stale_or_missing, strays, complete)


def _indexed_chunks_by_doc(
    index: ChunkIndex, index_name: str, sample: float, clock: Callable[[], float], deadline: float
) -> tuple[_Chunks, bool]:
    """The index's chunks of the sampled docs, grouped by doc; False when the deadline cut the
    read short (what was read so far is still compared)."""
    index.refresh(index_name)  # so chunks written just before the audit are seen
    by_doc: _Chunks = {}
    for cid, fields in index.iter_chunks(
        index_name, ["doc_id", "chunk_key", "content_hash", "source_version"]
    ):
        doc_id = str(fields.get("doc_id"))
        if _in_sample(doc_id, sample):
            by_doc.setdefault(doc_id, []).append((cid, fields))
        if clock() > deadline:
            return by_doc, False
    return by_doc, True


def _count_orphans_and_duplicates(
    audit: GenerationAudit,
    by_doc: _Chunks,
    entries: dict[str, LedgerEntry],
    live: dict[str, LiveDoc],
    max_examples: int,
) -> list[tuple[str, int]]:
    """Index side: count chunks no ledger entry of a live doc accounts for (orphans) and
    repeated content under one doc (duplicates). Returns the orphans as (chunk id, source
    version) for a repair to delete."""
    strays: list[tuple[str, int]] = []
    for doc_id, chunks in by_doc.items():
        entry = entries.get(doc_id)
        # Pending keys count as accounted for: a write in flight is not drift.
        accounted = set(entry.chunk_keys) | set(entry.pending_keys) if entry and doc_id in live else set()
        for cid, fields in chunks:
            if fields.get("chunk_key") not in accounted:
                audit.orphaned_vectors += 1
                strays.append((cid, int(fields.get("source_version") or 0)))
                _example(audit, "orphaned", cid, max_examples)
        hashes = [f.get("content_hash") for _, f in chunks]
        audit.duplicate_chunks += len(hashes) - len(set(hashes))
    return strays


def _count_live_drift(
    audit: GenerationAudit,
    live: dict[str, LiveDoc],
    entries: dict[str, LedgerEntry],
    by_doc: _Chunks,
    now: float,
    max_examples: int,
) -> set[str]:
    """Source side: count live docs missing from the index, stale in it (ledger behind the
    source) or regressed (ledger ahead of it), and the freshness lag of the ones a reconcile
    would fix. Returns those (missing or stale) ids."""
    stale_or_missing: set[str] = set()
    for doc_id, (version, updated_at, has_content) in live.items():
        entry = entries.get(doc_id)
        indexed_version = entry.source_version if entry and entry.state == "committed" else -1
        if has_content and doc_id not in by_doc:
            audit.missing_documents += 1
            stale_or_missing.add(doc_id)
            _example(audit, "missing", doc_id, max_examples)
        elif indexed_version < version:
            audit.stale_documents += 1
            stale_or_missing.add(doc_id)
            _example(audit, "stale", doc_id, max_examples)
        else:
            # Regressed is reported but not repaired: the index cannot go back to an older version.
            if indexed_version > version:
                audit.regressed_documents += 1
                _example(audit, "regressed", doc_id, max_examples)
            continue
        if updated_at is not None:
            audit.freshness_lag_s = max(audit.freshness_lag_s, now - updated_at)
    return stale_or_missing


def _delete_strays(index: ChunkIndex, index_name: str, strays: list[tuple[str, int]]) -> int:
    """Delete the orphaned chunks, each at the delete rank of its own source version: it beats
    a patch at that version, and a write at a newer version still beats the delete."""
    deleted = index.delete_chunks(
        index_name, [(cid, external_version(v, WriteRank.DELETE)) for cid, v in strays]
    )
    return deleted.deleted


def _enqueue_repairs(queue: JobQueue, live: dict[str, LiveDoc], stale_or_missing: set[str]) -> int:
    """One forced reconcile job per stale or missing doc (forced: the ledger cannot be trusted
    for a doc the audit found drifted). Returns how many were sent."""
    if not stale_or_missing:
        return 0
    jobs = [
        ReconcileJob(
            doc_id=d,
            min_source_version=live[d].version,
            reason="audit repair",
            source_updated_at=live[d].updated_at,
            force=True,
        )
        for d in sorted(stale_or_missing)
    ]
    queue.send(jobs)
    return len(jobs)


def publish(report: AuditReport, telemetry: Telemetry) -> None:
    """Gauges for the alarms, once per audit (zero included, so an alarm clears when the drift
    is gone)."""
    totals = report.totals()
    telemetry.gauge(METRICS.orphaned_vectors, totals["orphaned_vectors"])
    telemetry.gauge(METRICS.stale_documents, totals["stale_documents"])
    telemetry.gauge(METRICS.missing_documents, totals["missing_documents"])
    telemetry.gauge(METRICS.audit_freshness_lag, totals["freshness_lag_s"], "Seconds")
    telemetry.gauge(METRICS.malformed_items, totals["malformed_items"])


def _example(audit: GenerationAudit, kind: str, value: str, limit: int) -> None:
    bucket = audit.examples.setdefault(kind, [])
    if len(bucket) < limit:
        bucket.append(value)


__all__ = ["AuditReport", "GenerationAudit", "chunk_id", "publish", "run_audit"]
