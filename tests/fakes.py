"""In-memory implementations of the ports, for fast unit and property tests.

Two checks keep them honest. mypy checks each fake (and each adapter) against its Protocol (the
``_check`` assignments at the bottom), so the signatures cannot drift; the contract suites in
``tests/contract/`` run the same behaviour tests on each fake (marked ``unit``) and on its real
adapter (moto, osmem-server; marked ``integration``), so the behaviour cannot drift either.
Where an adapter's backend transforms what it stores (DynamoDB numbers come back as Decimal,
float32 vectors, JSON documents), the fake applies the same transformation.

``InMemoryIndex`` keeps OpenSearch's external-version rules: a write or delete with a version not
greater than the stored one is a conflict; a deleted id keeps its version as a tombstone.
"""

from __future__ import annotations

import bisect
import copy
import json
import math
import re
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from dynembed.core.config import Settings
from dynembed.core.errors import (
    ConfigError,
    DynembedError,
    ModelMismatchError,
    TransientError,
    UnknownGenerationError,
    VersionConflictError,
)
from dynembed.core.models import ChunkDocument, Generation, GenerationStatus, ReconcileJob
from dynembed.core.ports import (
    BlobStore,
    ChunkIndex,
    DeadLetters,
    Embedder,
    EmbeddingCache,
    HeldJobs,
    IndexSearch,
    JobDeadLetters,
    JobQueue,
    Ledger,
    LedgerEntry,
    MetricsSink,
    MetricUnitName,
    QuerySampleStore,
    Registry,
    SearchHit,
    SentinelWriter,
    ShadowQueue,
    SourceReader,
    WriteReport,
)
from dynembed.core.samples import QuerySample, ShadowComparison, ShadowJob
from dynembed.core.schema import SourceSchema
from dynembed.core.telemetry import Telemetry
from dynembed.index.errors import BulkWriteError, ItemFailure
from dynembed.index.filter_eval import FilterEvaluator
from dynembed.index.fusion import fuse_for
from dynembed.index.scoring import Scorer, prepare_vectors
from dynembed.rebuild.progress import BackfillProgress, Mutation, ProgressStore
from dynembed.wiring import Services

_serializer, _deserializer = TypeSerializer(), TypeDeserializer()


def as_dynamodb_returns(item: Mapping[str, Any]) -> dict[str, Any]:
    """What a boto3 read gives back for ``item``: numbers as Decimal, tuples as lists, sets
    kept (a float is stored as the Decimal of its repr, as the source app must write it)."""
    return {k: _deserializer.deserialize(_serializer.serialize(_decimals(v))) for k, v in item.items()}


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decimals(v) for v in value]
    if isinstance(value, set | frozenset):
        return {_decimals(v) for v in value}
    return value


@dataclass
class InMemorySource:
    """The source table. ``items`` holds what the app wrote; reads return it as DynamoDB does."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    id_attribute: str = "doc_id"

    def get_item(self, doc_id: str) -> dict[str, Any] | None:
        item = self.items.get(doc_id)
        return as_dynamodb_returns(item) if item is not None else None

    def get_items(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {d: as_dynamodb_returns(self.items[d]) for d in dict.fromkeys(doc_ids) if d in self.items}

    def scan_segment(
        self, segment: int, total_segments: int, start_key: dict[str, Any] | None, limit: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        # A stable hash (Python's str hash changes per process): reproducible segments.
        ids = sorted(d for d in self.items if zlib.crc32(d.encode()) % total_segments == segment)
        # Resume after the key even when that item is gone since (DynamoDB does).
        start = bisect.bisect_right(ids, str(start_key[self.id_attribute])) if start_key else 0
        page = ids[start : start + limit]
        last = {self.id_attribute: page[-1]} if page and start + limit < len(ids) else None
        return [as_dynamodb_returns(self.items[d]) for d in page], last

    def approximate_count(self) -> int | None:
        return len(self.items)


_WORDS = [
    *("table", "stream", "shard", "queue", "batch", "index", "vector", "chunk", "model", "ledger"),
    *("version", "access", "metadata", "tenant", "search", "filter", "alias", "rebuild", "segment"),
    *("page", "token", "quota", "retry", "window", "cache", "report"),
]


@dataclass
class SyntheticSource:
    """``count`` generated documents ``d000000000``… that are never stored: each is made from
    its number when read, and a scan page costs only its own items, so a backfill over tens of
    millions of items needs no memory for the table. Segment ``s`` of ``n`` holds the numbers
    ``≡ s (mod n)``, as a parallel scan splits a table by key hash."""

    count: int
    id_attribute: str = "doc_id"
    paragraphs: int = 4
    words_per_paragraph: int = 75

    def doc_id(self, number: int) -> str:
        return f"d{number:09d}"

    def __post_init__(self) -> None:
        # A pool of paragraphs made once; each doc picks its own and numbers them (cheap to make).
        self._pool = [
            " ".join(_WORDS[(k * 7 + i * (k % 5 + 3)) % len(_WORDS)] for i in range(self.words_per_paragraph))
            + "."
            for k in range(97)
        ]

    def item(self, number: int) -> dict[str, Any]:
        body = "\n\n".join(
            f"Paragraph {p} of document {number}: {self._pool[(number * 7 + p * 13) % len(self._pool)]}"
            for p in range(self.paragraphs)
        )
        return {
            self.id_attribute: self.doc_id(number),
            "version": 1,
            "title": f"Document {number}",
            "body": body,
            "acl": ["public"],
        }

    def _number(self, doc_id: str) -> int | None:
        try:
            number = int(doc_id.removeprefix("d"))
        except ValueError:
            return None
        return number if 0 <= number < self.count else None

    def get_item(self, doc_id: str) -> dict[str, Any] | None:
        number = self._number(doc_id)
        return self.item(number) if number is not None else None

    def get_items(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {d: item for d in doc_ids if (item := self.get_item(d)) is not None}

    def scan_segment(
        self, segment: int, total_segments: int, start_key: dict[str, Any] | None, limit: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        first = (
            segment
            if start_key is None
            else (self._number(str(start_key[self.id_attribute])) or 0) + total_segments
        )
        numbers = range(first, self.count, total_segments)[:limit]
        items = [self.item(n) for n in numbers]
        more = bool(numbers) and numbers[-1] + total_segments < self.count
        return items, ({self.id_attribute: self.doc_id(numbers[-1])} if more else None)

    def approximate_count(self) -> int | None:
        return self.count


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
        row = self.rows.get((doc_id, generation))
        if row is not None and _newer(row, source_version):
            raise VersionConflictError(f"{doc_id}: ledger newer than {source_version}")
        row = self.rows.setdefault((doc_id, generation), LedgerEntry(doc_id, generation))
        row.pending_keys = sorted(set(row.pending_keys) | set(pending_keys))

    def commit(self, entry: LedgerEntry) -> None:
        row = self.rows.get((entry.doc_id, entry.generation))
        if row is not None and (
            row.source_version > entry.source_version
            or (entry.state != "deleted" and _newer(row, entry.source_version))
        ):
            raise VersionConflictError(f"{entry.doc_id}: ledger newer than {entry.source_version}")
        row = self.rows.setdefault(
            (entry.doc_id, entry.generation), LedgerEntry(entry.doc_id, entry.generation)
        )
        row.source_version = entry.source_version
        row.chunk_keys = list(entry.chunk_keys)
        row.attrs_hash = entry.attrs_hash
        row.state = entry.state
        # As the adapter: an unknown change time keeps the one recorded; indexed_at defaults to now.
        if entry.source_updated_at is not None:
            row.source_updated_at = entry.source_updated_at
        row.indexed_at = entry.indexed_at or time.time()
        row.pending_keys = sorted(set(row.pending_keys) - set(entry.pending_keys))

    def scan(self, generation: str) -> Iterator[LedgerEntry]:
        for (_, gen), row in sorted(self.rows.items()):
            if gen == generation:
                yield copy.deepcopy(row)

    def delete_generation(self, generation: str) -> int:
        doomed = [key for key in self.rows if key[1] == generation]
        for key in doomed:
            del self.rows[key]
        return len(doomed)


def _newer(row: LedgerEntry, version: int) -> bool:
    """The ledger holds a newer state: a higher version, or a delete at this very version."""
    return row.source_version > version or (row.state == "deleted" and row.source_version >= version)


_UPDATABLE = frozenset({"status", "write_target", "report", "backfill", "quantizer", "threshold", "canary"})


@dataclass
class InMemoryRegistry:
    """Generations stored as the adapter stores them: JSON, so a report reads back as JSON does."""

    generations: dict[str, Generation] = field(default_factory=dict)
    clock: Callable[[], float] = time.time

    def get(self, generation_id: str) -> Generation:
        if generation_id not in self.generations:
            known = ", ".join(sorted(self.generations)) or "none"
            raise UnknownGenerationError(f"unknown generation {generation_id!r} (known: {known})")
        return self.generations[generation_id].model_copy(deep=True)

    def list(self) -> list[Generation]:
        return [
            g.model_copy(deep=True) for g in sorted(self.generations.values(), key=lambda g: g.created_at)
        ]

    def put(self, generation: Generation) -> None:
        self.generations[generation.id] = _stored(generation.model_copy(update={"updated_at": self.clock()}))

    def create(self, generation: Generation) -> None:
        if generation.id not in self.generations:
            self.put(generation)

    def update(self, generation_id: str, **changes: Any) -> Generation:
        wrong = sorted(set(changes) - _UPDATABLE)
        if wrong:
            raise ValueError(f"registry field {wrong[0]!r} cannot be updated")
        if generation_id not in self.generations:
            raise UnknownGenerationError(f"unknown generation {generation_id!r}")
        if "status" in changes:
            changes["status"] = GenerationStatus(changes["status"])
        if "write_target" in changes:
            changes["write_target"] = bool(changes["write_target"])
        changes["updated_at"] = self.clock()
        updated = _stored(self.generations[generation_id].model_copy(update=changes))
        self.generations[generation_id] = updated
        return updated.model_copy(deep=True)


def _stored(generation: Generation) -> Generation:
    return Generation.model_validate_json(generation.model_dump_json())


@dataclass
class InMemoryIndex:
    """Indices of chunk sources with external versions; aliases; exact k-NN per space type."""

    indices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    versions: dict[str, dict[str, int]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    mappings: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Index → (embedding dimension, space type), as ensure_index created it."""
    fail_next_writes: list[Exception] = field(default_factory=list)
    """Faults to inject: each write/delete call pops one and raises it."""
    crash_after: int | None = None
    """Raise TransientError after this many documents of the next write (a crash mid-write)."""
    refuse_docs: set[str] = field(default_factory=set)
    """Source docs whose chunks every write refuses, item by item (a 400 mapping error), while
    the rest of the request is written: OpenSearch's partial bulk failure."""
    write_calls: int = 0
    """``write_chunks`` requests made (the adapter sends one bulk request per call)."""

    def _resolve(self, name: str) -> str:
        return self.aliases.get(name, name)

    def _existing(self, name: str, what: str) -> str:
        concrete = self._resolve(name)
        if concrete not in self.indices:
            raise DynembedError(f"{what} {name}: no such index [{name}]")
        return concrete

    def _create(self, name: str) -> None:
        # OpenSearch creates a missing index on its first write (dynamic mapping).
        self.indices.setdefault(name, {})
        self.versions.setdefault(name, {})

    def ensure_index(self, generation: Generation) -> None:
        name = generation.index_name
        wanted = (generation.model.dimension, generation.model.space.value)
        have = self.mappings.get(name)
        if name in self.indices and have is not None and have != wanted:
            raise ConfigError(
                f"index {name} exists with embedding dimension {have[0]} and space {have[1]}; "
                f"generation {generation.id} needs {wanted[0]} and {wanted[1]}"
            )
        self._create(name)
        self.mappings.setdefault(name, wanted)

    def delete_index(self, index: str) -> None:
        self.indices.pop(index, None)
        self.versions.pop(index, None)
        self.mappings.pop(index, None)
        # Deleting an index deletes the aliases on it.
        self.aliases = {alias: target for alias, target in self.aliases.items() if target != index}

    def write_chunks(
        self, index: str, docs: Sequence[ChunkDocument], versions: Sequence[int] | None = None
    ) -> WriteReport:
        if versions is not None and len(versions) != len(docs):
            raise ValueError(f"write_chunks: {len(versions)} versions for {len(docs)} docs")
        self.write_calls += 1
        if self.fail_next_writes:
            raise self.fail_next_writes.pop(0)
        name = self._resolve(index)
        self._create(name)
        store, stored_versions = self.indices[name], self.versions[name]
        dimension = self.mappings.get(name, (None, ""))[0]
        report, failures = WriteReport(), []
        for n, doc in enumerate(docs):
            if self.crash_after is not None and n >= self.crash_after:
                self.crash_after = None
                raise TransientError("injected crash mid-write")
            version = versions[n] if versions is not None else doc.source_version
            if doc.doc_id in self.refuse_docs:
                failures.append(ItemFailure(doc.id, 400, "mapper_parsing_exception", "refused (injected)"))
                continue
            if dimension is not None and len(doc.embedding) != dimension:
                failures.append(
                    ItemFailure(
                        doc.id,
                        400,
                        "mapper_parsing_exception",
                        f"Vector dimension mismatch. Expected: {dimension}, Given: {len(doc.embedding)}",
                    )
                )
                continue
            if stored_versions.get(doc.id, -1) >= version:
                report.conflicts += 1
                continue
            store[doc.id] = json.loads(doc.model_dump_json())  # stored as the JSON sent
            stored_versions[doc.id] = version
            report.written += 1
        if failures:
            raise BulkWriteError(name, "write_chunks", failures, report)
        return report

    def delete_chunks(self, index: str, ids_versions: Sequence[tuple[str, int]]) -> WriteReport:
        if self.fail_next_writes:
            raise self.fail_next_writes.pop(0)
        name = self._resolve(index)
        self._create(name)
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
        store = self.indices[self._existing(index, "get_chunks from")]
        return {
            i: {k: copy.deepcopy(v) for k, v in store[i].items() if k not in exclude}
            for i in ids
            if i in store
        }

    def knn_search(
        self, index: str, vector: Sequence[float], k: int, filter_query: Mapping[str, Any] | None
    ) -> list[SearchHit]:
        name = self._existing(index, "knn_search on")
        store = self.indices[name]
        dimension, space = self.mappings.get(name, (len(vector), "cosinesimil"))
        if len(vector) != dimension:
            raise ModelMismatchError(
                f"query vector has {len(vector)} dimensions; index {name} holds {dimension}"
            )
        ids = sorted(store)
        docs = [store[i] for i in ids]
        if not ids:
            return []
        mask = FilterEvaluator(ids, docs).mask(filter_query)
        scored = [
            (_score(space, vector, docs[i]["embedding"]), doc_id) for i, doc_id in enumerate(ids) if mask[i]
        ]
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [
            SearchHit(
                doc_id, score, {k: copy.deepcopy(v) for k, v in store[doc_id].items() if k != "embedding"}
            )
            for score, doc_id in scored[:k]
        ]

    def search(self, index: str, request: IndexSearch) -> list[SearchHit]:
        """Cosine k-NN at the request's precision (the real scorer), and for hybrid a plain
        BM25 over ``text`` fused by the real fusion: what the adapters do, in memory."""
        store = self.indices[self._resolve(index)]
        ids = sorted(store)
        if not ids:
            return []
        docs = [store[i] for i in ids]
        mask = FilterEvaluator(ids, docs).mask(request.filter)
        full = prepare_vectors(np.asarray([d["embedding"] for d in docs], dtype=np.float32), "cosinesimil")
        norms = np.einsum("ij,ij->i", full, full).astype(np.float32)
        scorer = Scorer(full, norms, "cosinesimil", request.vectors, request.quantizer)
        top = scorer.top(np.asarray(request.vector, dtype=np.float32), mask, request.depth)
        vector_hits = [SearchHit(ids[row], score, _public(docs[row])) for row, score in top]
        if not request.retrieval.hybrid:
            return vector_hits
        scores = bm25([str(d.get("text", "")) for d in docs], str(request.text))
        ranked = sorted(
            (i for i in range(len(ids)) if mask[i] and scores[i] > 0), key=lambda i: (-scores[i], ids[i])
        )
        lexical = [SearchHit(ids[i], scores[i], _public(docs[i])) for i in ranked[: request.depth]]
        return fuse_for(request.retrieval, lexical, vector_hits, request.k)

    def iter_chunks(self, index: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        store = self.indices[self._existing(index, "iter_chunks over")]
        for doc_id, source in sorted(store.items()):
            # Like a _source filter: absent fields are left out, not None.
            yield doc_id, {f: copy.deepcopy(source[f]) for f in fields if f in source}

    def refresh(self, index: str) -> None:
        self._existing(index, "refresh")

    def alias_target(self, alias: str) -> str | None:
        return self.aliases.get(alias)

    def swap_alias(self, alias: str, new_index: str, old_index: str | None) -> None:
        current = self.aliases.get(alias)
        if current == new_index:
            return  # already moved: a retried step is harmless
        if current != old_index:
            raise VersionConflictError(f"alias {alias} points at {current}, not {old_index}")
        self.aliases[alias] = new_index


def _score(space: str, query: Sequence[float], stored: Sequence[float]) -> float:
    """OpenSearch's k-NN score for each space type (written out again, independently of
    dynembed.index.exact, so the contract suite compares two implementations)."""
    dot = sum(a * b for a, b in zip(query, stored, strict=True))
    if space == "cosinesimil":
        norms = math.sqrt(sum(a * a for a in query)) * math.sqrt(sum(b * b for b in stored))
        return (1 + dot / norms) / 2 if norms else 0.5
    if space == "innerproduct":
        return 1 + dot if dot >= 0 else 1 / (1 - dot)
    return 1 / (1 + sum((a - b) ** 2 for a, b in zip(query, stored, strict=True)))


def _public(source: Mapping[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in source.items() if k != "embedding"}


def bm25(texts: Sequence[str], query: str, k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Lucene's BM25 with lowercase word tokens (no stemming): enough to rank a fake's text."""
    tokens = [re.findall(r"\w+", t.lower()) for t in texts]
    counts = [Counter(t) for t in tokens]
    average = sum(len(t) for t in tokens) / max(len(tokens), 1) or 1.0
    terms = set(re.findall(r"\w+", query.lower()))
    scores = [0.0] * len(texts)
    for term in terms:
        having = sum(1 for c in counts if term in c)
        if not having:
            continue
        idf = math.log(1 + (len(texts) - having + 0.5) / (having + 0.5))
        for i, c in enumerate(counts):
            tf = c.get(term, 0)
            if tf:
                scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(tokens[i]) / average))
    return scores


@dataclass
class InMemoryQueue:
    """Jobs as the consumer receives them: through their JSON wire form, so a job changed by
    its sender after sending is not changed in the queue."""

    sent: list[ReconcileJob] = field(default_factory=list)
    """Jobs not yet taken by a consumer (``Harness.sync`` takes them all)."""
    in_flight: int = 0
    """Jobs a consumer has received but not yet finished (SQS counts them as not visible)."""

    def send(self, jobs: Sequence[ReconcileJob]) -> None:
        self.sent.extend(ReconcileJob.model_validate_json(job.model_dump_json()) for job in jobs)

    def depth(self) -> int:
        return len(self.sent) + self.in_flight


@dataclass
class InMemoryDeadLetters:
    """Dead-lettered bodies as the queue keeps them: JSON, anything else as its str()."""

    bodies: list[dict[str, Any]] = field(default_factory=list)

    def send(self, body: Mapping[str, Any]) -> None:
        self.bodies.append(json.loads(json.dumps(body, default=str)))

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The stream-failures queue's messages, oldest first (malformed records with their reason)."""
        return self.bodies


@dataclass
class HeldRow:
    job: ReconcileJob
    min_source_version: int
    first_held_at: float
    due_at: float
    source_updated_at: float | None
    edits: int


@dataclass
class InMemoryHeldJobs:
    """Held jobs, coalesced per doc, as the DynamoDB adapter keeps them."""

    rows: dict[str, HeldRow] = field(default_factory=dict)

    def hold(self, job: ReconcileJob, max_delay_s: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        row = self.rows.get(job.doc_id)
        newest = ReconcileJob.model_validate_json(job.model_dump_json())
        if row is None:
            self.rows[job.doc_id] = HeldRow(
                newest, job.min_source_version, now, now + max_delay_s, job.source_updated_at or now, 1
            )
            return
        # The first edit set the clock; later ones count, and the last one held is the job.
        row.job, row.min_source_version, row.edits = newest, job.min_source_version, row.edits + 1

    def due(self, now: float | None = None, flush_all: bool = False) -> list[tuple[ReconcileJob, int]]:
        now = time.time() if now is None else now
        return [
            (row.job.model_copy(update={"source_updated_at": row.source_updated_at}), row.edits)
            for row in self.rows.values()
            if flush_all or row.due_at <= now
        ]

    def count(self) -> int:
        return len(self.rows)

    def release(self, job: ReconcileJob) -> bool:
        row = self.rows.get(job.doc_id)
        if row is None or row.min_source_version > job.min_source_version:
            return False
        del self.rows[job.doc_id]
        return True


@dataclass
class InMemoryJobDeadLetters:
    sent: list[tuple[str, str, int]] = field(default_factory=list)
    """(message body, reason, attempts)."""

    def send(self, body: str, reason: str, attempts: int) -> None:
        self.sent.append((body, reason, attempts))


@dataclass
class InMemoryBlobs:
    """Objects by location; a missing one is a ConfigError, as on S3 or disk."""

    objects: dict[str, bytes] = field(default_factory=dict)

    def read(self, location: str) -> bytes:
        if location not in self.objects:
            raise ConfigError(f"cannot read {location}: no such object")
        return self.objects[location]

    def write(self, location: str, data: bytes, content_type: str = "text/plain") -> str:
        self.objects[location] = data
        return location


@dataclass
class RecordingMetricsSink:
    """Every data point ``Telemetry`` publishes, as (name, value, unit, dimensions)."""

    points: list[tuple[str, float, str, dict[str, str]]] = field(default_factory=list)

    def emit(self, name: str, value: float, unit: MetricUnitName, dimensions: Mapping[str, str]) -> None:
        self.points.append((name, value, unit, dict(dimensions)))


@dataclass
class InMemoryCache:
    """Vectors kept as float32, as the adapter stores them."""

    vectors: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def get_many(self, model_id: str, content_hashes: Sequence[str]) -> dict[str, list[float]]:
        return {h: list(self.vectors[(model_id, h)]) for h in content_hashes if (model_id, h) in self.vectors}

    def put_many(self, model_id: str, vectors: Mapping[str, Sequence[float]]) -> None:
        for h, v in vectors.items():
            self.vectors[(model_id, h)] = np.asarray(v, dtype=np.float32).astype(float).tolist()


@dataclass
class SentMessage:
    queue_url: str
    body: str
    attributes: dict[str, Any]


@dataclass
class InMemorySqsClient:
    """The few SQS client calls the flows make directly (send_message to a DLQ, queue depth)."""

    messages: list[SentMessage] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    """Queue url → messages received but not yet deleted (ApproximateNumberOfMessagesNotVisible)."""

    def send_message(
        self, QueueUrl: str, MessageBody: str, MessageAttributes: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self.messages.append(SentMessage(QueueUrl, MessageBody, dict(MessageAttributes or {})))
        return {"MessageId": str(len(self.messages))}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: Sequence[str]) -> dict[str, Any]:
        counts = {
            "ApproximateNumberOfMessages": sum(1 for m in self.messages if m.queue_url == QueueUrl),
            "ApproximateNumberOfMessagesNotVisible": self.in_flight.get(QueueUrl, 0),
            "ApproximateNumberOfMessagesDelayed": 0,
        }
        return {"Attributes": {name: str(counts[name]) for name in AttributeNames if name in counts}}

    def sent_to(self, queue_url: str) -> list[SentMessage]:
        return [m for m in self.messages if m.queue_url == queue_url]


class InMemoryProgressStore:
    """Backfill progress on a Registry's ``backfill`` field; a lock stands in for DynamoDB's
    compare-and-set (parallel segments in one process)."""

    _lock = threading.Lock()

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def load(self, generation_id: str) -> BackfillProgress | None:
        return BackfillProgress.from_record(self.registry.get(generation_id).backfill)

    def change(self, generation_id: str, mutate: Mutation) -> BackfillProgress:
        with self._lock:
            progress = mutate(self.load(generation_id))
            self.registry.update(generation_id, backfill=progress.record())
            return progress


@dataclass
class InMemoryQuerySamples:
    """Samples and comparisons in arrival order (the DynamoDB store sorts by time; tests add in
    time order)."""

    sampled: list[QuerySample] = field(default_factory=list)
    compared: list[ShadowComparison] = field(default_factory=list)

    def put_sample(self, sample: QuerySample) -> None:
        self.sampled.append(sample)

    def samples(self, generation: str, since: float | None = None, limit: int = 1000) -> list[QuerySample]:
        mine = [s for s in self.sampled if s.generation == generation and (since is None or s.at >= since)]
        return mine[-limit:]

    def put_comparison(self, comparison: ShadowComparison) -> None:
        self.compared.append(comparison)

    def comparisons(self, candidate: str, limit: int = 1000) -> list[ShadowComparison]:
        return [c for c in self.compared if c.candidate == candidate][-limit:]


@dataclass
class InMemoryShadowQueue:
    sent: list[ShadowJob] = field(default_factory=list)

    def send(self, job: ShadowJob) -> None:
        self.sent.append(job)


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


# Type-checked against the ports: mypy fails here if a fake or an adapter drifts from its
# Protocol. Never called.
class FakeBedrockRuntime:
    """A ``bedrock-runtime`` client that answers InvokeModel for Titan v2 and Cohere v3 with
    vectors derived from each text (and, for Cohere, its ``input_type``: a query and a document
    of the same text get different vectors, as the real model gives them), so embedders built
    on it can be held to the Embedder contract offline. Keeps every request body, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @staticmethod
    def vector(text: str, dimension: int, salt: str = "") -> list[float]:
        rng = np.random.default_rng(zlib.crc32(f"{salt}|{text}".encode()))
        return [float(x) for x in rng.standard_normal(dimension)]

    def invoke_model(self, *, modelId: str, body: str, **_: Any) -> dict[str, Any]:
        request = json.loads(body)
        with self._lock:
            self.bodies.append(request)
        if "inputText" in request:
            answer: dict[str, Any] = {"embedding": self.vector(request["inputText"], request["dimensions"])}
        else:
            answer = {"embeddings": [self.vector(t, 1024, request["input_type"]) for t in request["texts"]]}
        return {"body": _Body(json.dumps(answer).encode())}


@dataclass
class _Body:
    data: bytes

    def read(self) -> bytes:
        return self.data


def _check() -> None:
    from dynembed.adapters.dynamodb.cache import DynamoEmbeddingCache
    from dynembed.adapters.dynamodb.held_jobs import DynamoHeldJobs
    from dynembed.adapters.dynamodb.ledger import DynamoLedger
    from dynembed.adapters.dynamodb.registry import DynamoProgressStore, DynamoRegistry
    from dynembed.adapters.dynamodb.sentinel import DynamoSentinelWriter
    from dynembed.adapters.dynamodb.source import DynamoSourceReader
    from dynembed.adapters.sqs import SqsDeadLetters, SqsJobDeadLetters, SqsJobQueue
    from dynembed.embedders.bedrock import CohereEmbedder, TitanEmbedder
    from dynembed.embedders.counting import CountingEmbedder
    from dynembed.embedders.hashing import HashingEmbedder
    from dynembed.embedders.local import MiniLMEmbedder, StaticEmbedder
    from tests.harness import Harness

    _s: SourceReader = InMemorySource()
    _g: SourceReader = SyntheticSource(1)
    _l: Ledger = InMemoryLedger()
    _r: Registry = InMemoryRegistry()
    _i: ChunkIndex = InMemoryIndex()
    _q: JobQueue = InMemoryQueue()
    _c: EmbeddingCache = InMemoryCache()
    _h: HeldJobs = InMemoryHeldJobs()
    _d: DeadLetters = InMemoryDeadLetters()
    _s2: SourceReader = DynamoSourceReader("t", "doc_id", region="r")
    _l2: Ledger = DynamoLedger("t", region="r")
    _r2: Registry = DynamoRegistry("t", region="r")
    _c2: EmbeddingCache = DynamoEmbeddingCache("t", region="r")
    _h2: HeldJobs = DynamoHeldJobs("t", region="r")
    _q2: JobQueue = SqsJobQueue("q", None)
    _d2: DeadLetters = SqsDeadLetters("q", None)
    _j2: JobDeadLetters = SqsJobDeadLetters("q", None)
    _p2: ProgressStore = DynamoProgressStore("t", region="r")
    _j: JobDeadLetters = InMemoryJobDeadLetters()
    _b: BlobStore = InMemoryBlobs()
    _m: MetricsSink = RecordingMetricsSink()
    _p: ProgressStore = InMemoryProgressStore(InMemoryRegistry())
    _w: SentinelWriter = Harness()  # the harness writes the sentinel's items through its stream
    _w2: SentinelWriter = DynamoSentinelWriter("t", "doc_id", region="r")
    _qs: QuerySampleStore = InMemoryQuerySamples()
    _sq: ShadowQueue = InMemoryShadowQueue()
    _e1: Embedder = HashingEmbedder()
    _e2: Embedder = MiniLMEmbedder()
    _e3: Embedder = StaticEmbedder()
    _e4: Embedder = TitanEmbedder(512, client=FakeBedrockRuntime())
    _e5: Embedder = CohereEmbedder(client=FakeBedrockRuntime())
    _e6: Embedder = CountingEmbedder(HashingEmbedder())


def services_over(
    settings: Settings,
    schema: SourceSchema,
    telemetry: Telemetry | None = None,
    *,
    embedders: Sequence[Embedder] = (),
    **adapters: Any,
) -> Services:
    """The production wiring (``Services``) with fakes slotted in for the adapters named (by
    their ``Services`` attribute: ``source=``, ``ledger=``, ...) and for the embedders given (by
    model id); every other adapter is the real one, built on first use."""
    svc = Services(
        settings=settings, schema=schema, telemetry=telemetry if telemetry is not None else Telemetry()
    )
    svc.__dict__.update(adapters)
    for embedder in embedders:
        svc._embedders[embedder.spec.model_id] = embedder
    return svc
