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
from dynembed.core.schema import ItemState, SourceSchema, UpdateMode
from dynembed.core.telemetry import Telemetry
from dynembed.core.versioning import WriteRank, external_version
from dynembed.sync.chunking import chunker_for
from dynembed.sync.classify import classify_record, record_doc_id
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
        reason (retrying cannot fix it, and it must not block the shard), once access has been
        re-applied from the doc's current source item (fail closed); other errors raise."""
        try:
            decision = classify_record(record, self.schema)
        except MalformedRecordError as exc:
            self.telemetry.count(METRICS.malformed_records)
            doc_id = record_doc_id(record, self.schema)
            if doc_id is not None:
                # Whatever the bad write meant, the index must not keep serving what the doc's
                # current item does not grant: re-apply access from it (hidden if unreadable).
                self.patch(doc_id, ChangeKind.ACCESS)
            logger.warning(
                "malformed stream record", doc_id=exc.doc_id, reason=str(exc), failed_closed=bool(doc_id)
            )
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
                self.patch(decision.doc_id, action, changed_at=decision.source_updated_at)
                if action is ChangeKind.ACCESS and decision.source_updated_at is not None:
                    self.telemetry.access_lag(self.clock() - decision.source_updated_at)
            elif action is ChangeKind.CONTENT:
                assert decision.source_version is not None, "a content decision always has a version"
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
        updated = decision.source_updated_at
        self.telemetry.note(
            decision.doc_id,
            f"decision {decision.kind.value}",
            version=decision.source_version,
            lag_s=None if updated is None else self.clock() - updated,
            detail=decision.reason,
        )

    def write_targets(self) -> list[Generation]:
        if self._targets is None:
            self._targets = [g for g in self.registry.list() if g.write_target]
        return self._targets

    def patch(self, doc_id: str, kind: ChangeKind, changed_at: float | None = None) -> int:
        """Rewrite the attribute fields of every chunk of the doc in every write target, keeping
        the stored vectors: no embedding (I5). Decided from the *current* source item: gone or
        tombstoned → deleted; malformed → hidden (deleted) and counted. An access change the index
        cannot take at the item's version (not bumped, or the source went back) hides the doc in
        that generation (fail closed). Returns chunks patched."""
        item = self.source.get_item(doc_id)
        state = self.schema.state_of(item, doc_id)
        if state.kind != "live" or item is None or state.version is None:
            self._remove(doc_id, state.version, state)
            return 0
        version = state.version
        attrs = attributes_of(item, self.schema)
        patched = 0
        reindex = False
        for gen in self.write_targets():
            entry = self.ledger.get(doc_id, gen.id)
            if entry is None:
                continue  # nothing indexed yet: the content job will write current attributes
            if entry.state == "deleted":
                # Deleted or hidden below this version and live again: only a reconcile brings
                # it back (the content job of a re-creation does too; a duplicate costs reads).
                reindex |= version > entry.source_version and bool(self.schema.content_of(item))
                continue
            ids = [chunk_id(doc_id, k) for k in sorted(set(entry.chunk_keys) | set(entry.pending_keys))]
            stored = self.index.get_chunks(gen.index_name, ids)
            if kind is ChangeKind.ACCESS:
                blocked = [
                    cid
                    for cid, source in stored.items()
                    if int(source.get("source_version", -1)) >= version and _access_differs(source, attrs)
                ]
                if blocked:
                    # An external version at or below the stored one cannot overwrite these
                    # chunks, so hide the doc here rather than leave it readable by a revoked
                    # principal; the next version above the hidden one brings it back.
                    self.telemetry.count(METRICS.access_fail_closed, len(blocked))
                    logger.error(
                        "access change the index cannot take at this version; doc hidden",
                        doc_id=doc_id,
                        generation=gen.id,
                        version=version,
                        chunks=len(blocked),
                    )
                    stored_versions = [int(s.get("source_version", 0)) for s in stored.values()]
                    self._delete_in(gen, doc_id, entry, max([version, *stored_versions]), recheck=False)
                    continue
            writable = [
                cid for cid, source in stored.items() if int(source.get("source_version", -1)) < version
            ]
            # A stored version at or above this one refuses the patch: do not even send it.
            self.telemetry.count(METRICS.version_conflicts, len(stored) - len(writable))
            if writable:
                docs = [_with_attrs(stored[cid], attrs, version) for cid in writable]
                report = self.index.write_chunks(
                    gen.index_name, docs, [external_version(version, WriteRank.PATCH)] * len(docs)
                )
                patched += report.written
                self.telemetry.count(METRICS.version_conflicts, report.conflicts)
            reindex |= self._advance_ledger(item, gen, entry, version, attrs)
        if reindex:
            self.pending_jobs.append(
                ReconcileJob(
                    doc_id=doc_id,
                    min_source_version=version,
                    reason="re-index: the indexed content is not the current item's",
                    source_updated_at=changed_at,
                    enqueued_at=self.clock(),
                    tenant=attrs["tenant"],
                    source_type=attrs["source_type"],
                )
            )
        name = METRICS.access_patches if kind is ChangeKind.ACCESS else METRICS.metadata_patches
        self.telemetry.count(name)
        self.telemetry.count(METRICS.chunks_patched, patched)
        return patched

    def _advance_ledger(
        self, item: dict[str, Any], gen: Generation, entry: LedgerEntry, version: int, attrs: dict[str, Any]
    ) -> bool:
        """When the indexed content is already this version's (same chunk keys), the patch
        brought the doc fully up to date: record it, so audits and redeliveries agree. Returns
        True when the indexed content is *not* the current item's and needs a reconcile: a
        content change (its own job follows; the two coalesce), or text a source that went
        back restored, which no content job would ever bring otherwise."""
        if entry.state != "committed" or entry.pending_keys or entry.source_version >= version:
            return False
        keys = [c.key for c in chunker_for(gen.chunker).chunk(self.schema.content_of(item))]
        if keys != list(entry.chunk_keys):
            return True
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
        return False

    def delete(self, doc_id: str, version: int | None) -> int:
        """Remove every chunk of the doc from every write target, now, whatever version its
        chunks carry (``version`` None: the record did not say). Decided from the current source
        item: if it is live again at a newer version (re-created), its own record brings the
        content, and its access is re-applied here instead."""
        current = self.source.get_item(doc_id)
        state = self.schema.state_of(current, doc_id)
        if (
            state.kind == "live"
            and state.version is not None
            and (version is None or state.version > version)
        ):
            self.telemetry.count(METRICS.stale_deletes_skipped)
            self.patch(doc_id, ChangeKind.ACCESS)
            return 0
        return self._remove(doc_id, version, state)

    def _remove(self, doc_id: str, version: int | None, state: ItemState) -> int:
        """The current item is gone, tombstoned or malformed: nothing of the doc may be served."""
        if state.kind == "malformed":
            self.telemetry.count(METRICS.malformed_items)
            logger.error(
                "source item malformed; its chunks are hidden", doc_id=doc_id, reason=str(state.problem)
            )
        floor = max(v for v in (version, state.version, 0) if v is not None)
        removed = 0
        for gen in self.write_targets():
            entry = self.ledger.get(doc_id, gen.id)
            if entry is not None:
                removed += self._delete_in(gen, doc_id, entry, floor)
        self.telemetry.count(METRICS.deletes)
        return removed

    def _delete_in(
        self, gen: Generation, doc_id: str, entry: LedgerEntry, floor: int, recheck: bool = True
    ) -> int:
        """Delete the doc's chunks in one generation at (at least) ``floor`` and record it in the
        ledger. Chunks the delete could not remove carry a higher version than the ledger knows
        (a patch, or a source that went back): unless the item has meanwhile become live again
        (``recheck``: then a newer write protects them and the next reconcile handles them),
        they are deleted at their own version, since the current item says not to serve them."""
        keys = sorted(set(entry.chunk_keys) | set(entry.pending_keys))
        ids = [chunk_id(doc_id, k) for k in keys]
        at = max(floor, entry.source_version, 0)
        report = self.index.delete_chunks(
            gen.index_name, [(cid, external_version(at, WriteRank.DELETE)) for cid in ids]
        )
        deleted, conflicts = report.deleted, report.conflicts
        if conflicts:
            survivors = self.index.get_chunks(gen.index_name, ids, exclude=("embedding",))
            live_again = recheck and self.schema.state_of(self.source.get_item(doc_id), doc_id).kind == "live"
            if survivors and not live_again:
                at = max([at, *(int(s.get("source_version", 0)) for s in survivors.values())])
                again = self.index.delete_chunks(
                    gen.index_name, [(cid, external_version(at, WriteRank.DELETE)) for cid in survivors]
                )
                deleted += again.deleted
                conflicts = again.conflicts
            elif not survivors:
                conflicts = 0  # already deleted at this version or above: a redelivery
        self.telemetry.count(METRICS.chunks_deleted, deleted)
        self.telemetry.count(METRICS.version_conflicts, conflicts)
        survivors_left = surviving_keys(self.index, gen.index_name, doc_id, keys) if conflicts else set()
        try:
            # Chunks a newer write protected stay in the ledger, so the next reconcile handles them.
            self.ledger.commit(
                LedgerEntry(
                    doc_id,
                    gen.id,
                    source_version=at,
                    chunk_keys=sorted(survivors_left),
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
        return deleted


def _access_differs(source: Mapping[str, Any], attrs: Mapping[str, Any]) -> bool:
    """Whether a stored chunk grants other principals or another tenant than ``attrs``."""
    return sorted(source.get("acl") or []) != list(attrs["acl"]) or (source.get("tenant") or None) != (
        attrs["tenant"] or None
    )


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
