"""The classify side of incremental sync: turn each stream record into its cheapest correct
action. Access and delete decisions touch the index at once (I3), with no embedding (I5);
content decisions become reconcile jobs, sent to SQS (or held, for the batched policy) after the
batch's patches and deletes are done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynembed.core.config import METRICS
from dynembed.core.errors import MalformedRecordError, VersionConflictError
from dynembed.core.models import ChangeKind, ChunkDocument, Decision, Generation, ReconcileJob, chunk_id
from dynembed.core.observability import logger
from dynembed.core.ports import (
    ChunkIndex,
    DeadLetters,
    HeldJobs,
    JobQueue,
    Ledger,
    LedgerEntry,
    Registry,
    SourceReader,
)
from dynembed.core.schema import SourceSchema, UpdateMode
from dynembed.core.telemetry import Telemetry
from dynembed.core.versioning import WriteRank, external_version
from dynembed.sync.chunking import chunker_for
from dynembed.sync.classify import classify_record
from dynembed.sync.reconcile import attributes_of, attrs_hash, surviving_keys


@dataclass
class ChangeApplier:
    """Applies decisions. Every index write reads the current source item first, so a patch
    always carries the newest attributes and a late, older decision cannot undo a newer one."""

    schema: SourceSchema
    source: SourceReader
    ledger: Ledger
    registry: Registry
    index: ChunkIndex
    queue: JobQueue
    held: HeldJobs | None = None
    dead_letters: DeadLetters | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    clock: Callable[[], float] = time.time
    pending_jobs: list[ReconcileJob] = field(default_factory=list)
    _targets: list[Generation] | None = None

    # ---- one stream batch ----------------------------------------------------------------------
    def begin_batch(self) -> None:
        self.pending_jobs = []
        self._targets = None

    def handle_record(self, record: Mapping[str, Any]) -> Decision | None:
        """Classify and apply one raw stream record. A malformed record is dead-lettered with its
        reason (retrying cannot fix it, and it must not block the shard); other errors raise."""
        try:
            decision = classify_record(record, self.schema)
        except MalformedRecordError as exc:
            self.telemetry.count(METRICS.malformed_records)
            if self.dead_letters is None:
                raise
            self.dead_letters.send({"reason": str(exc), "doc_id": exc.doc_id, "record": dict(record)})
            return None
        self.apply(decision)
        return decision

    def end_batch(self) -> None:
        """Send the batch's content jobs; raising here fails the batch (it is retried whole, and
        every action above is idempotent)."""
        immediate: list[ReconcileJob] = []
        for job in _coalesce(self.pending_jobs):
            policy = self.schema.policy_named(job.tenant, job.source_type)
            if policy.mode is UpdateMode.BATCHED and self.held is not None:
                self.held.hold(job, policy.max_delay_seconds, self.clock())
                self.telemetry.count(METRICS.jobs_held)
            else:
                immediate.append(job)
        if immediate:
            self.queue.send(immediate)
            self.telemetry.count(METRICS.jobs_enqueued, len(immediate))
        self.pending_jobs = []

    # ---- decisions -------------------------------------------------------------------------------
    def apply(self, decision: Decision) -> None:
        self.telemetry.count(METRICS.decisions, 1, ("kind", decision.kind.value))
        for action in decision.actions:
            if action is ChangeKind.DELETE:
                self.delete(decision.doc_id, decision.source_version)
            elif action in (ChangeKind.ACCESS, ChangeKind.METADATA):
                self.patch(decision.doc_id, action)
            elif action is ChangeKind.CONTENT:
                self.pending_jobs.append(
                    ReconcileJob(
                        doc_id=decision.doc_id,
                        min_source_version=decision.source_version,
                        reason=decision.reason,
                        source_updated_at=decision.source_updated_at,
                        enqueued_at=self.clock(),
                        tenant=decision.tenant,
                        source_type=decision.source_type,
                    )
                )

    def write_targets(self) -> list[Generation]:
        if self._targets is None:
            self._targets = [g for g in self.registry.list() if g.write_target]
        return self._targets

    def patch(self, doc_id: str, kind: ChangeKind) -> int:
        """Rewrite the attribute fields of every chunk of the doc in every write target, keeping
        the stored vectors: no embedding (I5). Returns chunks patched."""
        item = self.source.get_item(doc_id)
        if item is None or (self.schema.tombstone and self.schema.tombstone.is_tombstoned(item)):
            version = self.schema.version_of(item, doc_id) if item is not None else None
            self.delete(doc_id, version)
            return 0
        version = self.schema.version_of(item, doc_id)
        attrs = attributes_of(item, self.schema)
        patched = 0
        for gen in self.write_targets():
            entry = self.ledger.get(doc_id, gen.id)
            if entry is None or entry.state == "deleted":
                continue  # nothing indexed yet: the content job will write current attributes
            ids = [chunk_id(doc_id, k) for k in sorted(set(entry.chunk_keys) | set(entry.pending_keys))]
            stored = self.index.get_chunks(gen.index_name, ids)
            if kind is ChangeKind.ACCESS:
                unbumped = [
                    cid
                    for cid, source in stored.items()
                    if int(source.get("source_version", -1)) >= version and source.get("acl") != attrs["acl"]
                ]
                if unbumped:
                    # The app changed access without bumping the version: an equal external
                    # version cannot overwrite these chunks, so hide them (fail closed) rather
                    # than leave them readable by a revoked principal.
                    self.telemetry.count(METRICS.access_fail_closed, len(unbumped))
                    logger.error(
                        "access changed without a version bump; chunks hidden",
                        doc_id=doc_id,
                        chunks=len(unbumped),
                    )
                    self.index.delete_chunks(
                        gen.index_name,
                        [(cid, external_version(version, WriteRank.DELETE)) for cid in unbumped],
                    )
                    stored = {cid: src for cid, src in stored.items() if cid not in unbumped}
            docs = [_with_attrs(source, attrs, version) for source in stored.values()]
            if docs:
                report = self.index.write_chunks(
                    gen.index_name, docs, [external_version(version, WriteRank.PATCH)] * len(docs)
                )
                patched += report.written
                self.telemetry.count(METRICS.version_conflicts, report.conflicts)
            self._advance_ledger(item, gen, entry, version, attrs)
        name = METRICS.access_patches if kind is ChangeKind.ACCESS else METRICS.metadata_patches
        self.telemetry.count(name)
        self.telemetry.count(METRICS.chunks_patched, patched)
        return patched

    def _advance_ledger(
        self, item: dict[str, Any], gen: Generation, entry: LedgerEntry, version: int, attrs: dict[str, Any]
    ) -> None:
        """When the indexed content is already this version's (same chunk keys), the patch
        brought the doc fully up to date: record it, so audits and redeliveries agree."""
        if entry.state != "committed" or entry.pending_keys or entry.source_version >= version:
            return
        keys = [c.key for c in chunker_for(gen.chunker).chunk(self.schema.content_of(item))]
        if keys != list(entry.chunk_keys):
            return  # content changed too: its reconcile job will commit the version
        try:
            self.ledger.commit(
                LedgerEntry(
                    doc_id=entry.doc_id,
                    generation=gen.id,
                    source_version=version,
                    chunk_keys=keys,
                    attrs_hash=attrs_hash(attrs, self.schema.schema_version),
                    state="committed",
                    source_updated_at=self.schema.updated_at_of(item),
                    indexed_at=self.clock(),
                )
            )
        except VersionConflictError:
            self.telemetry.count(METRICS.version_conflicts)

    def delete(self, doc_id: str, version: int | None) -> int:
        """Remove every chunk of the doc from every write target, now."""
        if version is not None:
            current = self.source.get_item(doc_id)
            live = current is not None and not (
                self.schema.tombstone and self.schema.tombstone.is_tombstoned(current)
            )
            if live and current is not None and self.schema.version_of(current, doc_id) > version:
                # Recreated or un-archived since: its own stream record brings it up to date.
                self.telemetry.count(METRICS.stale_deletes_skipped)
                return 0
        removed = 0
        for gen in self.write_targets():
            entry = self.ledger.get(doc_id, gen.id)
            if entry is None:
                continue
            at = version if version is not None else max(entry.source_version, 0)
            keys = sorted(set(entry.chunk_keys) | set(entry.pending_keys))
            report = self.index.delete_chunks(
                gen.index_name, [(chunk_id(doc_id, k), external_version(at, WriteRank.DELETE)) for k in keys]
            )
            removed += report.deleted
            self.telemetry.count(METRICS.chunks_deleted, report.deleted)
            self.telemetry.count(METRICS.version_conflicts, report.conflicts)
            survivors = (
                surviving_keys(self.index, gen.index_name, doc_id, keys) if report.conflicts else set()
            )
            try:
                # Chunks a newer write protected stay in the ledger, so the next reconcile handles them.
                self.ledger.commit(
                    LedgerEntry(
                        doc_id,
                        gen.id,
                        source_version=at,
                        chunk_keys=sorted(survivors),
                        pending_keys=keys,
                        state="deleted",
                    )
                )
            except VersionConflictError:
                # A newer version was committed while this delete ran; chunks it kept unchanged
                # may have been deleted, so reconcile the doc again, rewriting every chunk.
                self.telemetry.count(METRICS.version_conflicts)
                self.pending_jobs.append(
                    ReconcileJob(
                        doc_id=doc_id,
                        min_source_version=at,
                        reason="repair: a delete raced a newer version",
                        enqueued_at=self.clock(),
                        force=True,
                    )
                )
        self.telemetry.count(METRICS.deletes)
        return removed


def _with_attrs(source: Mapping[str, Any], attrs: Mapping[str, Any], version: int) -> ChunkDocument:
    fields = {k: v for k, v in source.items() if k in ChunkDocument.model_fields}
    fields.update(attrs)
    fields["source_version"] = version
    fields["indexed_at"] = time.time()
    return ChunkDocument.model_validate(fields)


def _coalesce(jobs: Sequence[ReconcileJob]) -> list[ReconcileJob]:
    """One job per doc per batch (reconcile reads the newest source anyway): the newest
    version, timed from the earliest change it stands for, so freshness lag is not understated."""
    by_doc: dict[str, list[ReconcileJob]] = {}
    for job in jobs:
        by_doc.setdefault(job.doc_id, []).append(job)
    coalesced = []
    for group in by_doc.values():
        newest = max(group, key=lambda j: j.min_source_version)
        times = [j.source_updated_at for j in group if j.source_updated_at is not None]
        coalesced.append(newest.model_copy(update={"source_updated_at": min(times) if times else None}))
    return coalesced
