"""In-memory implementations of the ports, for fast unit and property tests. They are checked
against the Protocols by mypy (see the ``_check`` assignments at the bottom), so they cannot drift.

``InMemoryIndex`` keeps OpenSearch's external-version rules: a write or delete with a version not
greater than the stored one is a conflict; a deleted id keeps its version as a tombstone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynembed.core.errors import TransientError, UnknownGenerationError, VersionConflictError
from dynembed.core.models import ChunkDocument, Generation, ReconcileJob
from dynembed.core.ports import (
    ChunkIndex,
    EmbeddingCache,
    JobQueue,
    Ledger,
    LedgerEntry,
    MetricDatum,
    MetricsPublisher,
    Registry,
    SearchHit,
    SourceReader,
    WriteReport,
)
from dynembed.index.exact import FilterEvaluator


@dataclass
class InMemorySource:
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    id_attribute: str = "doc_id"

    def get_item(self, doc_id: str) -> dict[str, Any] | None:
        item = self.items.get(doc_id)
        return copy.deepcopy(item) if item is not None else None

    def get_items(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {d: copy.deepcopy(self.items[d]) for d in doc_ids if d in self.items}

    def scan_segment(
        self, segment: int, total_segments: int, start_key: dict[str, Any] | None, limit: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        ids = sorted(d for d in self.items if hash(d) % total_segments == segment or total_segments == 1)
        start = ids.index(start_key[self.id_attribute]) + 1 if start_key else 0
        page = ids[start : start + limit]
        last = {self.id_attribute: page[-1]} if page and start + limit < len(ids) else None
        return [copy.deepcopy(self.items[d]) for d in page], last

    def iter_all(self) -> Iterator[dict[str, Any]]:
        for doc_id in sorted(self.items):
            yield copy.deepcopy(self.items[doc_id])


@dataclass
class InMemoryLedger:
    rows: dict[tuple[str, str], LedgerEntry] = field(default_factory=dict)

    def get(self, doc_id: str, generation: str) -> LedgerEntry | None:
        row = self.rows.get((doc_id, generation))
        return copy.deepcopy(row) if row else None

    def get_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], LedgerEntry]:
        return {k: copy.deepcopy(self.rows[k]) for k in keys if k in self.rows}

    def begin(self, doc_id: str, generation: str, pending_keys: Sequence[str], source_version: int) -> None:
        if not pending_keys:
            return
        row = self.rows.setdefault((doc_id, generation), LedgerEntry(doc_id, generation))
        if _newer(row, source_version):
            raise VersionConflictError(f"{doc_id}: ledger newer than {source_version}")
        row.pending_keys = sorted(set(row.pending_keys) | set(pending_keys))

    def commit(self, entry: LedgerEntry) -> None:
        row = self.rows.setdefault(
            (entry.doc_id, entry.generation), LedgerEntry(entry.doc_id, entry.generation)
        )
        if row.source_version > entry.source_version or (
            entry.state != "deleted" and _newer(row, entry.source_version)
        ):
            raise VersionConflictError(f"{entry.doc_id}: ledger newer than {entry.source_version}")
        row.source_version = entry.source_version
        row.chunk_keys = list(entry.chunk_keys)
        row.attrs_hash = entry.attrs_hash
        row.state = entry.state
        row.source_updated_at = entry.source_updated_at
        row.indexed_at = entry.indexed_at
        row.pending_keys = sorted(set(row.pending_keys) - set(entry.pending_keys))

    def scan(self, generation: str) -> Iterator[LedgerEntry]:
        for (_, gen), row in sorted(self.rows.items()):
            if gen == generation:
                yield copy.deepcopy(row)


def _newer(row: LedgerEntry, version: int) -> bool:
    """The ledger holds a newer state: a higher version, or a delete at this very version."""
    return row.source_version > version or (row.state == "deleted" and row.source_version >= version)


@dataclass
class InMemoryRegistry:
    generations: dict[str, Generation] = field(default_factory=dict)

    def get(self, generation_id: str) -> Generation:
        if generation_id not in self.generations:
            raise UnknownGenerationError(f"unknown generation {generation_id!r}")
        return self.generations[generation_id].model_copy(deep=True)

    def list(self) -> list[Generation]:
        return [
            g.model_copy(deep=True) for g in sorted(self.generations.values(), key=lambda g: g.created_at)
        ]

    def put(self, generation: Generation) -> None:
        self.generations[generation.id] = generation.model_copy(deep=True)

    def update(self, generation_id: str, **changes: Any) -> Generation:
        gen = self.get(generation_id)
        updated = gen.model_copy(update=changes)
        self.generations[generation_id] = updated
        return updated.model_copy(deep=True)


@dataclass
class InMemoryIndex:
    """Indices of chunk sources with external versions; aliases; exact cosine k-NN."""

    indices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    versions: dict[str, dict[str, int]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    fail_next_writes: list[Exception] = field(default_factory=list)
    """Faults to inject: each write/delete call pops one and raises it."""
    crash_after: int | None = None
    """Raise TransientError after this many documents of the next write (a crash mid-write)."""

    def _resolve(self, name: str) -> str:
        return self.aliases.get(name, name)

    def ensure_index(self, generation: Generation) -> None:
        self.indices.setdefault(generation.index_name, {})
        self.versions.setdefault(generation.index_name, {})

    def delete_index(self, index: str) -> None:
        self.indices.pop(index, None)
        self.versions.pop(index, None)

    def write_chunks(
        self, index: str, docs: Sequence[ChunkDocument], versions: Sequence[int] | None = None
    ) -> WriteReport:
        if self.fail_next_writes:
            raise self.fail_next_writes.pop(0)
        name = self._resolve(index)
        store, stored_versions = self.indices[name], self.versions[name]
        report = WriteReport()
        for n, doc in enumerate(docs):
            if self.crash_after is not None and n >= self.crash_after:
                self.crash_after = None
                raise TransientError("injected crash mid-write")
            version = versions[n] if versions is not None else doc.source_version
            if stored_versions.get(doc.id, -1) >= version:
                report.conflicts += 1
                continue
            store[doc.id] = doc.model_dump()
            stored_versions[doc.id] = version
            report.written += 1
        return report

    def delete_chunks(self, index: str, ids_versions: Sequence[tuple[str, int]]) -> WriteReport:
        if self.fail_next_writes:
            raise self.fail_next_writes.pop(0)
        name = self._resolve(index)
        store, stored_versions = self.indices[name], self.versions[name]
        report = WriteReport()
        for doc_id, version in ids_versions:
            if stored_versions.get(doc_id, -1) >= version:
                report.conflicts += 1
                continue
            stored_versions[doc_id] = version  # tombstone
            if store.pop(doc_id, None) is None:
                report.missing += 1
            else:
                report.deleted += 1
        return report

    def get_chunks(
        self, index: str, ids: Sequence[str], exclude: Sequence[str] = ()
    ) -> dict[str, dict[str, Any]]:
        store = self.indices[self._resolve(index)]
        return {
            i: {k: copy.deepcopy(v) for k, v in store[i].items() if k not in exclude}
            for i in ids
            if i in store
        }

    def knn_search(
        self, index: str, vector: Sequence[float], k: int, filter_query: Mapping[str, Any] | None
    ) -> list[SearchHit]:
        store = self.indices[self._resolve(index)]
        ids = sorted(store)
        docs = [store[i] for i in ids]
        mask = FilterEvaluator(ids, docs).mask(filter_query) if ids else []
        norm_q = math.sqrt(sum(v * v for v in vector)) or 1.0
        scored = []
        for i, doc_id in enumerate(ids):
            if not mask[i]:
                continue
            emb = docs[i]["embedding"]
            norm_d = math.sqrt(sum(v * v for v in emb)) or 1.0
            cos = sum(a * b for a, b in zip(vector, emb, strict=True)) / (norm_q * norm_d)
            scored.append(((1 + cos) / 2, doc_id))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [
            SearchHit(doc_id, score, {k: v for k, v in store[doc_id].items() if k != "embedding"})
            for score, doc_id in scored[:k]
        ]

    def iter_chunks(self, index: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        for doc_id, source in sorted(self.indices[self._resolve(index)].items()):
            yield doc_id, {f: source.get(f) for f in fields}

    def refresh(self, index: str) -> None:
        return None

    def alias_target(self, alias: str) -> str | None:
        return self.aliases.get(alias)

    def swap_alias(self, alias: str, new_index: str, old_index: str | None) -> None:
        if self.aliases.get(alias) != old_index:
            raise VersionConflictError(f"alias {alias} points at {self.aliases.get(alias)}, not {old_index}")
        self.aliases[alias] = new_index


@dataclass
class InMemoryQueue:
    sent: list[ReconcileJob] = field(default_factory=list)

    def send(self, jobs: Sequence[ReconcileJob]) -> None:
        self.sent.extend(jobs)


@dataclass
class InMemoryCache:
    vectors: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def get_many(self, model_id: str, content_hashes: Sequence[str]) -> dict[str, list[float]]:
        return {h: self.vectors[(model_id, h)] for h in content_hashes if (model_id, h) in self.vectors}

    def put_many(self, model_id: str, vectors: Mapping[str, Sequence[float]]) -> None:
        for h, v in vectors.items():
            self.vectors[(model_id, h)] = list(v)


class FaultyIndex:
    """Wraps a real ChunkIndex with the same fault knobs as InMemoryIndex: ``crash_after`` (the
    next write stores k chunks, then dies) and ``fail_next_writes`` (the next calls raise)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.crash_after: int | None = None
        self.fail_next_writes: list[Exception] = []

    def write_chunks(
        self, index: str, docs: Sequence[ChunkDocument], versions: Sequence[int] | None = None
    ) -> WriteReport:
        if self.fail_next_writes:
            raise self.fail_next_writes.pop(0)
        if self.crash_after is not None and len(docs) > self.crash_after:
            k, self.crash_after = self.crash_after, None
            self.inner.write_chunks(index, docs[:k], list(versions[:k]) if versions is not None else None)
            raise TransientError("injected crash mid-write")
        result: WriteReport = self.inner.write_chunks(index, docs, versions)
        return result

    def delete_chunks(self, index: str, ids_versions: Sequence[tuple[str, int]]) -> WriteReport:
        if self.fail_next_writes:
            raise self.fail_next_writes.pop(0)
        result: WriteReport = self.inner.delete_chunks(index, ids_versions)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class RecordingMetrics:
    """Keeps what the monitors publish; ``fail`` makes CloudWatch refuse (TransientError)."""

    data: list[MetricDatum] = field(default_factory=list)
    fail: bool = False

    def publish(self, data: Sequence[MetricDatum]) -> None:
        if self.fail:
            raise TransientError("CloudWatch: throttled")
        self.data.extend(data)

    def values(self, name: str, **dimensions: str) -> list[float]:
        return [d.value for d in self.data if d.name == name and dict(d.dimensions) == dimensions]


# Type-checked against the ports: mypy fails here if a fake drifts from its Protocol.
def _check() -> None:
    _s: SourceReader = InMemorySource()
    _l: Ledger = InMemoryLedger()
    _r: Registry = InMemoryRegistry()
    _i: ChunkIndex = InMemoryIndex()
    _q: JobQueue = InMemoryQueue()
    _c: EmbeddingCache = InMemoryCache()
    _m: MetricsPublisher = RecordingMetrics()
