"""Reconcile: bring one document's chunks in one generation in line with its current source
version (DESIGN.md flow 1, invariants I2 and I4).

A batch of jobs is reconciled in three phases so that the texts of every job in the batch reach
the embedder together: plan (read the source once per doc, chunk, diff against the ledger),
embed (only texts this model has not embedded: the ledger and the embedding cache say which),
apply (pending keys first, then one bulk index write per generation for the whole batch with
external versions, then each doc's deletes and ledger commit).
A failure is kept per job, so one bad document never fails the others.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynembed.core.config import METRICS
from dynembed.core.errors import (
    DynembedError,
    EmbeddingIncomplete,
    MalformedRecordError,
    VersionConflictError,
)
from dynembed.core.models import (
    SENTINEL_TENANT,
    Chunk,
    ChunkDocument,
    Generation,
    ModelSpec,
    ReconcileJob,
    chunk_id,
)
from dynembed.core.ports import (
    ChunkIndex,
    Embedder,
    EmbeddingCache,
    Ledger,
    LedgerEntry,
    Registry,
    SourceReader,
    WriteReport,
)
from dynembed.core.schema import ItemState, SourceSchema
from dynembed.core.telemetry import Telemetry
from dynembed.core.versioning import WriteRank, external_version
from dynembed.index.errors import BulkWriteError
from dynembed.sync.chunking import chunker_for

EmbedderFactory = Callable[[ModelSpec], Embedder]


def attributes_of(item: dict[str, Any], schema: SourceSchema) -> dict[str, Any]:
    """The non-semantic fields every chunk of a doc carries (filters and display)."""
    return {
        "acl": schema.acl_of(item),
        "tenant": schema.tenant_of(item),
        "source_type": schema.source_type_of(item),
        "metadata": schema.metadata_of(item),
    }


def surviving_keys(index: ChunkIndex, index_name: str, doc_id: str, keys: Sequence[str]) -> set[str]:
    """Keys whose chunk is still in the index after a delete (a newer write protected it)."""
    stored = index.get_chunks(index_name, [chunk_id(doc_id, k) for k in keys])
    return {k for k in keys if chunk_id(doc_id, k) in stored}


def _attrs_differ(source: dict[str, Any], attrs: dict[str, Any]) -> bool:
    return any(
        (sorted(source.get(name) or []) if name == "acl" else source.get(name) or None)
        != (sorted(value or []) if name == "acl" else value or None)
        for name, value in attrs.items()
    )


def attrs_hash(attrs: dict[str, Any], schema_version: int) -> str:
    blob = json.dumps({"attrs": attrs, "schema": schema_version}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Plan:
    """What reconcile will do for one (doc, generation)."""

    job: ReconcileJob
    generation: Generation
    action: str  # write | delete | skip
    reason: str
    version: int = -1
    entry: LedgerEntry | None = None
    chunks: list[Chunk] = field(default_factory=list)
    to_embed: list[Chunk] = field(default_factory=list)
    """New chunks (not in the ledger): they need a vector, from the cache or the model."""
    to_rewrite: list[Chunk] = field(default_factory=list)
    """Unchanged chunks whose attributes drifted: rewritten with their stored vector."""
    obsolete: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    attrs_digest: str = ""
    source_updated_at: float | None = None
    stored_vectors: dict[str, list[float]] = field(default_factory=dict)
    """Vectors of ``to_rewrite`` chunks, read from the index."""
    problem: MalformedRecordError | None = None
    """The current item is malformed: its chunks are deleted and the job fails with this."""
    indexed_at: float = 0.0
    """When its chunk documents were made (``begin``): their ``indexed_at`` and the ledger's."""


@dataclass
class _Write:
    """A begun write: the job it belongs to, its plan, and the chunk documents to index."""

    outcome: JobOutcome
    plan: Plan
    docs: list[ChunkDocument]


@dataclass
class JobOutcome:
    job: ReconcileJob
    error: Exception | None = None
    plans: list[Plan] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def _diff_against_ledger(plan: Plan) -> list[Chunk]:
    """Set ``to_embed`` to the chunks the ledger does not know; return the ones it does (the
    index still has to confirm them)."""
    known = set(plan.entry.chunk_keys) if plan.entry else set()
    plan.to_embed = [c for c in plan.chunks if c.key not in known]
    return [c for c in plan.chunks if c.key in known]


def _already_current(plan: Plan) -> bool:
    """Committed at this very version, with the same attributes, and nothing to add or remove:
    the write would change nothing."""
    entry = plan.entry
    return (
        entry is not None
        and entry.state == "committed"
        and entry.source_version == plan.version
        and entry.attrs_hash == plan.attrs_digest
        and not plan.to_embed
        and not plan.obsolete
    )


@dataclass
class Reconciler:
    schema: SourceSchema
    source: SourceReader
    ledger: Ledger
    registry: Registry
    index: ChunkIndex
    embedder_for: EmbedderFactory
    cache: EmbeddingCache | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    clock: Callable[[], float] = time.time
    _entries: dict[tuple[str, str], LedgerEntry] = field(default_factory=dict)

    # ---- public -------------------------------------------------------------------------------
    def reconcile(
        self,
        jobs: Sequence[ReconcileJob],
        force: bool = False,
        prefetched: Mapping[str, dict[str, Any]] | None = None,
    ) -> list[JobOutcome]:
        """``prefetched``: source items the caller has just read consistently (a backfill's
        scan page); only the other docs are read here."""
        outcomes = [JobOutcome(job) for job in jobs]
        targets = self._targets(jobs)
        # One batch read of the source and one of the ledger for the whole batch.
        doc_ids = list(dict.fromkeys(job.doc_id for job in jobs))
        found = dict(prefetched or {})
        missing = [d for d in doc_ids if d not in found]
        if missing:
            found.update(self.source.get_items(missing))
        items: dict[str, dict[str, Any] | None] = {d: found.get(d) for d in doc_ids}
        self._entries = self.ledger.get_many(
            [(job.doc_id, g) for job in jobs for g in (job.generations or list(targets))]
        )
        for outcome in outcomes:
            try:
                outcome.plans = self._plan_job(outcome.job, targets, items, force)
            except Exception as exc:  # kept per job: the rest of the batch goes on
                outcome.error = exc
        try:
            vectors = self._embed([p for o in outcomes if o.ok for p in o.plans])
        except Exception as exc:
            for outcome in outcomes:
                if outcome.ok and any(p.to_embed for p in outcome.plans):
                    outcome.error = exc
            vectors = {}
        ready = [o for o in outcomes if o.ok]
        self._apply(ready, vectors)
        for outcome in ready:
            if not outcome.ok:
                continue
            problem = next((p.problem for p in outcome.plans if p.problem is not None), None)
            if problem is not None:
                # Hidden in every target; the job still fails, so the item is reported (DLQ,
                # backfill failures, the reprocess command) until the source app fixes it.
                self.telemetry.count(METRICS.malformed_items)
                outcome.error = problem
        return outcomes

    # ---- plan ---------------------------------------------------------------------------------
    def _targets(self, jobs: Sequence[ReconcileJob]) -> dict[str, Generation]:
        wanted = {g for job in jobs if job.generations for g in job.generations}
        targets = {g.id: g for g in self.registry.list() if g.write_target}
        for gen_id in wanted - targets.keys():
            targets[gen_id] = self.registry.get(gen_id)  # explicit targets (backfill into a candidate)
        return targets

    def _plan_job(
        self,
        job: ReconcileJob,
        targets: dict[str, Generation],
        items: dict[str, dict[str, Any] | None],
        force: bool,
    ) -> list[Plan]:
        if job.doc_id not in items:
            items[job.doc_id] = self.source.get_item(job.doc_id)
        item = items[job.doc_id]
        gens = [targets[g] for g in job.generations] if job.generations else list(targets.values())
        return [self._plan(job, gen, item, force or job.force) for gen in gens]

    def _plan(self, job: ReconcileJob, gen: Generation, item: dict[str, Any] | None, force: bool) -> Plan:
        """Decide for one (doc, generation), in this order: a doc not to be served is deleted; a
        version the ledger is already past is refused or skipped; otherwise the current chunks
        are written, minus what the ledger and the index show is already there (all of them
        when forced)."""
        entry = self._entries.get((job.doc_id, gen.id))
        state = self.schema.state_of(item, job.doc_id)
        if state.kind != "live" or item is None or state.version is None:
            return self._removal_plan(job, gen, entry, state)
        version = state.version
        self._check_version(job, entry, version)
        if entry is not None and entry.source_version > version:
            return Plan(
                job, gen, "skip", f"ledger already at newer version {entry.source_version}", version, entry
            )
        plan = self._write_plan(job, gen, item, entry, version)
        if force:
            plan.to_embed = list(plan.chunks)
            return plan
        unchanged = _diff_against_ledger(plan)
        if _already_current(plan):
            plan.action, plan.reason = "skip", "already at this version"
            return plan
        if unchanged:
            self._recheck_unchanged_in_index(plan, unchanged)
        return plan

    def _removal_plan(
        self, job: ReconcileJob, gen: Generation, entry: LedgerEntry | None, state: ItemState
    ) -> Plan:
        """The doc is not to be served (gone, tombstoned, or malformed: hidden): delete every
        chunk the ledger knows of, or skip when an earlier delete already covers it."""
        stored = entry.source_version if entry else -1
        keys = sorted(set(entry.chunk_keys) | set(entry.pending_keys)) if entry else []
        version = self._removal_version(job, gen, state, stored, keys)
        reason = {"gone": "gone from source", "tombstoned": "tombstoned"}.get(state.kind, "malformed: hidden")
        if entry is None or (entry.state == "deleted" and not keys and stored >= version):
            return Plan(
                job, gen, "skip", "already deleted", version=version, entry=entry, problem=state.problem
            )
        return Plan(
            job, gen, "delete", reason, version=version, entry=entry, obsolete=keys, problem=state.problem
        )

    def _removal_version(
        self, job: ReconcileJob, gen: Generation, state: ItemState, stored: int, keys: Sequence[str]
    ) -> int:
        """Delete at the highest version any of the doc's chunks carries: patches may be above
        the ledger's, and a source that went back is below the index's."""
        return max(
            state.version if state.version is not None else 0,
            stored,
            job.min_source_version if state.kind == "gone" else 0,
            self._highest_chunk_version(gen, job.doc_id, keys),
        )

    def _check_version(self, job: ReconcileJob, entry: LedgerEntry | None, version: int) -> None:
        """Count a source that went back; refuse a live version that does not rise past the
        version the doc was deleted or hidden at."""
        if version < job.min_source_version:
            # A consistent read older than the change that caused the job: the source went back
            # (the stream's own older-version record re-applies access). Converge to what the
            # source holds now; the ledger and external versions refuse anything below the index.
            self.telemetry.count(METRICS.source_went_back)
        if entry is not None and entry.state == "deleted" and entry.source_version >= version:
            # Re-created (or gone back) with a version that does not rise past the delete: the
            # index would refuse every write (external versions), so say so instead of skipping.
            raise MalformedRecordError(
                f"source version {version} is not above the version {entry.source_version} the doc "
                "was deleted or hidden at (re-created, or the source went back); versions must keep "
                "rising across deletes (use a timestamp version or keep counting)",
                job.doc_id,
            )

    def _write_plan(
        self,
        job: ReconcileJob,
        gen: Generation,
        item: dict[str, Any],
        entry: LedgerEntry | None,
        version: int,
    ) -> Plan:
        """A write of the item's current chunks and attributes; ``obsolete`` is every chunk the
        ledger knows of (committed or pending) that the new chunking no longer has."""
        attrs = attributes_of(item, self.schema)
        digest = attrs_hash(attrs, self.schema.schema_version)
        chunks = chunker_for(gen.chunker).chunk(self.schema.content_of(item))
        # A deleted doc's ledger keeps only chunks a newer write protected from the delete.
        known = set(entry.chunk_keys) if entry else set()
        leftovers = set(entry.pending_keys) if entry else set()
        return Plan(
            job,
            gen,
            "write",
            "reconcile",
            version=version,
            entry=entry,
            chunks=chunks,
            obsolete=sorted((known | leftovers) - {c.key for c in chunks}),
            attrs=attrs,
            attrs_digest=digest,
            source_updated_at=self.schema.updated_at_of(item) or job.source_updated_at,
        )

    def _recheck_unchanged_in_index(self, plan: Plan, unchanged: Sequence[Chunk]) -> None:
        """Unchanged chunks keep their vectors; the index (not the ledger) says whether their
        attributes are current, since a fast-path patch may have moved them meanwhile. A chunk
        lost from the index is embedded again (cache first); one whose attributes drifted, or
        that moved, is rewritten with its stored vector. Fields only first: vectors are fetched
        just for the chunks that get rewritten."""
        job, gen = plan.job, plan.generation
        stored_chunks = self.index.get_chunks(
            gen.index_name, [chunk_id(job.doc_id, c.key) for c in unchanged], exclude=("embedding",)
        )
        for chunk in unchanged:
            source = stored_chunks.get(chunk_id(job.doc_id, chunk.key))
            if source is None:
                plan.to_embed.append(chunk)  # lost from the index: vector from the cache or the model
            elif _attrs_differ(source, plan.attrs) or source.get("chunk_index") != chunk.index:
                plan.to_rewrite.append(chunk)  # drifted attributes, or the chunk moved
        if plan.to_rewrite:
            self._load_stored_vectors(plan)

    def _load_stored_vectors(self, plan: Plan) -> None:
        """Read the vectors of the chunks to rewrite; one gone since the first read is moved to
        ``to_embed`` (cache first)."""
        ids = [chunk_id(plan.job.doc_id, c.key) for c in plan.to_rewrite]
        vectors = self.index.get_chunks(plan.generation.index_name, ids)
        for chunk in list(plan.to_rewrite):
            vector = vectors.get(chunk_id(plan.job.doc_id, chunk.key), {}).get("embedding")
            if vector:
                plan.stored_vectors[chunk.key] = list(vector)
            else:  # gone since the first read: embed it again (cache first)
                plan.to_rewrite.remove(chunk)
                plan.to_embed.append(chunk)

    def _highest_chunk_version(self, gen: Generation, doc_id: str, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        stored = self.index.get_chunks(
            gen.index_name, [chunk_id(doc_id, k) for k in keys], exclude=("embedding",)
        )
        return max((int(s.get("source_version", 0)) for s in stored.values()), default=0)

    # ---- embed --------------------------------------------------------------------------------
    def _embed(self, plans: Sequence[Plan]) -> dict[tuple[str, str], list[float]]:
        """Vectors by (model id, content hash) for every chunk to write, embedding only misses."""
        by_model: dict[str, tuple[ModelSpec, dict[str, str]]] = {}
        tenant_of: dict[str, str] = {}  # content hash → the tenant its cost is charged to
        for plan in plans:
            if plan.action != "write" or not plan.to_embed:
                continue
            spec = plan.generation.model
            wanted = by_model.setdefault(spec.model_id, (spec, {}))[1]
            for chunk in plan.to_embed:
                wanted[chunk.content_hash] = chunk.text
                tenant_of.setdefault(chunk.content_hash, plan.attrs.get("tenant") or "none")
        vectors: dict[tuple[str, str], list[float]] = {}
        for model_id, (spec, wanted) in by_model.items():
            cached = self.cache.get_many(model_id, list(wanted)) if self.cache else {}
            misses = [h for h in wanted if h not in cached]
            self.telemetry.count(METRICS.embeddings_skipped, len(cached))
            if misses:
                embedder = self.embedder_for(spec)
                if embedder.spec.model_id != model_id:
                    raise DynembedError(
                        f"embedder {embedder.spec.model_id} cannot serve generation model {model_id}"
                    )
                try:
                    fresh = embedder.embed_documents([wanted[h] for h in misses])
                except EmbeddingIncomplete as exc:  # keep what was paid for: the retry reuses it
                    if self.cache and exc.vectors:
                        self.cache.put_many(model_id, {misses[i]: v for i, v in exc.vectors.items()})
                    self.telemetry.count(METRICS.embeddings_computed, len(exc.vectors))
                    self.telemetry.count(METRICS.embedding_failures)
                    raise
                except Exception:  # counted for the alarm, then failed per job by the caller
                    self.telemetry.count(METRICS.embedding_failures)
                    raise
                computed = dict(zip(misses, fresh, strict=True))
                if self.cache:
                    self.cache.put_many(model_id, computed)
                cached.update(computed)
                self.telemetry.count(METRICS.embeddings_computed, len(misses))
                chars_by_tenant: dict[str, int] = {}
                for content_hash in misses:
                    tenant = tenant_of[content_hash]
                    chars_by_tenant[tenant] = chars_by_tenant.get(tenant, 0) + len(wanted[content_hash])
                for tenant, chars in chars_by_tenant.items():
                    if tenant != SENTINEL_TENANT:  # dynembed's own probe is nobody's cost
                        self.telemetry.count(METRICS.embedded_characters, chars, ("tenant", tenant))
            for content_hash, vector in cached.items():
                vectors[(model_id, content_hash)] = list(vector)
        return vectors

    # ---- apply --------------------------------------------------------------------------------
    # ---- apply --------------------------------------------------------------------------------
    def _apply(self, outcomes: Sequence[JobOutcome], vectors: dict[tuple[str, str], list[float]]) -> None:
        """Pending keys first for every write (``begin``), then one bulk write per index for the
        whole batch, then each doc's obsolete chunks and its commit. A doc whose step fails
        fails its own job only; the pending keys already in the ledger cover a crash anywhere
        between (invariant I4)."""
        writes: list[_Write] = []
        for outcome in outcomes:
            try:
                for plan in outcome.plans:
                    docs = self._begin(plan, vectors)
                    if docs is not None:
                        writes.append(_Write(outcome, plan, docs))
            except Exception as exc:
                outcome.error = exc
        writes = [w for w in writes if w.outcome.ok]  # a job that failed is retried whole
        self._write_chunks(writes)
        for write in writes:
            if not write.outcome.ok:
                continue
            try:
                self._finish(write.plan)
            except Exception as exc:
                write.outcome.error = exc

    def _begin(self, plan: Plan, vectors: dict[tuple[str, str], list[float]]) -> list[ChunkDocument] | None:
        """Skips and deletes are done here; a write is begun and returns its chunk documents
        (None when a newer version is already committed)."""
        doc_id, gen = plan.job.doc_id, plan.generation
        if plan.action == "skip":
            self.telemetry.count(METRICS.embeddings_skipped, len(plan.chunks))
            return None
        if plan.action == "delete":
            self._delete(plan)
            return None
        try:
            self.ledger.begin(doc_id, gen.id, [c.key for c in plan.to_embed], plan.version)
        except VersionConflictError:
            self.telemetry.count(METRICS.version_conflicts)
            return None  # a newer version is already committed; nothing to do here
        plan.indexed_at = now = self.clock()
        docs = [
            self._document(plan, c, vectors[(gen.model.model_id, c.content_hash)], now) for c in plan.to_embed
        ]
        for chunk in plan.to_rewrite:
            docs.append(self._document(plan, chunk, plan.stored_vectors[chunk.key], now))
        self.telemetry.count(METRICS.embeddings_skipped, len(plan.chunks) - len(plan.to_embed))
        return docs

    def _write_chunks(self, writes: Sequence[_Write]) -> None:
        """One ``write_chunks`` per index for every begun write: a failed item fails the job of
        its doc, a failed request every job in it."""
        by_index: dict[str, list[_Write]] = {}
        for write in writes:
            if write.docs:
                by_index.setdefault(write.plan.generation.index_name, []).append(write)
        for index_name, group in by_index.items():
            docs = [doc for w in group for doc in w.docs]
            versions = [external_version(w.plan.version, WriteRank.CONTENT) for w in group for _ in w.docs]
            try:
                report = self.index.write_chunks(index_name, docs, versions)
            except BulkWriteError as exc:
                report = exc.report
                for write in group:
                    mine = {doc.id for doc in write.docs}
                    failures = [f for f in exc.failures if f.chunk_id in mine]
                    if failures:
                        write.outcome.error = BulkWriteError(
                            index_name, "write_chunks", failures, WriteReport()
                        )
            except Exception as exc:
                for write in group:
                    write.outcome.error = exc
                continue
            self.telemetry.count(METRICS.chunks_written, report.written)
            self.telemetry.count(METRICS.version_conflicts, report.conflicts)

    def _finish(self, plan: Plan) -> None:
        """A written doc's obsolete chunks go, then its ledger commit (or, on a lost race, the
        clean-up of what only this run wrote)."""
        doc_id, gen = plan.job.doc_id, plan.generation
        now = plan.indexed_at
        survivors: set[str] = set()
        if plan.obsolete:
            deleted = self.index.delete_chunks(
                gen.index_name,
                [
                    (chunk_id(doc_id, k), external_version(plan.version, WriteRank.DELETE))
                    for k in plan.obsolete
                ],
            )
            self.telemetry.count(METRICS.chunks_deleted, deleted.deleted)
            self.telemetry.count(METRICS.version_conflicts, deleted.conflicts)
            if deleted.conflicts:
                # Written or patched above this version (the source went back below them):
                # the delete cannot take them, so the ledger keeps them, where patches, hiding
                # and the audit still find them; a write above their version removes them.
                survivors = surviving_keys(self.index, gen.index_name, doc_id, plan.obsolete)
        new_keys = [c.key for c in plan.to_embed]
        try:
            self.ledger.commit(
                LedgerEntry(
                    doc_id=doc_id,
                    generation=gen.id,
                    source_version=plan.version,
                    chunk_keys=[c.key for c in plan.chunks] + sorted(survivors),
                    pending_keys=sorted(set(new_keys) | set(plan.obsolete)),
                    attrs_hash=plan.attrs_digest,
                    state="committed",
                    source_updated_at=plan.source_updated_at,
                    indexed_at=now,
                )
            )
        except VersionConflictError:
            # Lost a race with a newer reconcile: remove what only this run wrote.
            self.telemetry.count(METRICS.version_conflicts)
            self._clean_after_lost_race(plan)
            return
        if plan.source_updated_at is not None:
            self.telemetry.freshness(now - plan.source_updated_at)
        self.telemetry.note(
            doc_id,
            "indexed",
            version=plan.version,
            lag_s=None if plan.source_updated_at is None else now - plan.source_updated_at,
            generation=gen.id,
            detail=f"{len(plan.to_embed)} chunks embedded, {len(plan.obsolete)} removed",
        )

    def _clean_after_lost_race(self, plan: Plan) -> None:
        winner = self.ledger.get(plan.job.doc_id, plan.generation.id)
        keep = set(winner.chunk_keys) if winner else set()
        mine = [c.key for c in plan.to_embed if c.key not in keep]
        if mine:
            self.index.delete_chunks(
                plan.generation.index_name,
                [
                    (chunk_id(plan.job.doc_id, k), external_version(plan.version, WriteRank.DELETE))
                    for k in mine
                ],
            )

    def _delete(self, plan: Plan) -> None:
        doc_id, gen = plan.job.doc_id, plan.generation
        report = self.index.delete_chunks(
            gen.index_name,
            [(chunk_id(doc_id, k), external_version(plan.version, WriteRank.DELETE)) for k in plan.obsolete],
        )
        self.telemetry.count(METRICS.chunks_deleted, report.deleted)
        self.telemetry.count(METRICS.version_conflicts, report.conflicts)
        survivors = (
            surviving_keys(self.index, gen.index_name, doc_id, plan.obsolete) if report.conflicts else set()
        )
        try:
            self.ledger.commit(
                LedgerEntry(
                    doc_id=doc_id,
                    generation=gen.id,
                    source_version=plan.version,
                    chunk_keys=sorted(survivors),
                    pending_keys=list(plan.obsolete),
                    state="deleted",
                    indexed_at=self.clock(),
                )
            )
        except VersionConflictError:
            self.telemetry.count(METRICS.version_conflicts)
            return
        self.telemetry.note(doc_id, "deleted", version=plan.version, generation=gen.id)

    def _document(self, plan: Plan, chunk: Chunk, vector: Sequence[float], now: float) -> ChunkDocument:
        gen = plan.generation
        return ChunkDocument(
            doc_id=plan.job.doc_id,
            chunk_key=chunk.key,
            chunk_index=chunk.index,
            text=chunk.passage or chunk.text,
            content_hash=chunk.content_hash,
            embedding=list(vector),
            source_version=plan.version,
            source_updated_at=plan.source_updated_at,
            indexed_at=now,
            model_id=gen.model.model_id,
            chunker_version=gen.chunker.version,
            schema_version=self.schema.schema_version,
            generation=gen.id,
            tenant=plan.attrs.get("tenant"),
            source_type=plan.attrs.get("source_type"),
            acl=plan.attrs.get("acl", []),
            metadata=plan.attrs.get("metadata", {}),
        )
