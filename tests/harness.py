"""A pipeline wired on in-memory fakes: the real classify decisions, ChangeApplier and
Reconciler, with stream records built like DynamoDB Streams builds them. Unit and property
tests drive it; integration tests drive the same code on moto + osmem."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from dynembed.core.config import Settings
from dynembed.core.models import ChunkerSpec, Generation, ModelSpec, ReconcileJob, chunk_id
from dynembed.core.ports import Embedder
from dynembed.core.schema import SourceSchema, TombstoneRule
from dynembed.core.telemetry import Telemetry
from dynembed.embedders.counting import CountingEmbedder
from dynembed.embedders.hashing import HashingEmbedder
from dynembed.rebuild.generations import bootstrap, new_generation
from dynembed.sync.chunking import chunker_for
from dynembed.sync.ingest import ChangeApplier
from dynembed.sync.reconcile import Reconciler
from dynembed.wiring import Services
from tests.fakes import (
    InMemoryBlobs,
    InMemoryCache,
    InMemoryHeldJobs,
    InMemoryIndex,
    InMemoryJobDeadLetters,
    InMemoryLedger,
    InMemoryProgressStore,
    InMemoryQueue,
    InMemoryRegistry,
    InMemorySource,
    InMemorySqsClient,
)

SCHEMA = SourceSchema(
    metadata_attributes=("category",),
    tombstone=TombstoneRule(attribute="status", values=("archived",)),
)
SMALL_CHUNKS = ChunkerSpec(target_chars=200, max_chars=400, min_chars=60)
_serializer = TypeSerializer()


def typed(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {k: _serializer.serialize(v) for k, v in item.items()}


@dataclass
class Harness:
    schema: SourceSchema = SCHEMA
    chunker: ChunkerSpec = SMALL_CHUNKS
    source: InMemorySource = field(default_factory=InMemorySource)
    ledger: Any = field(default_factory=InMemoryLedger)
    registry: Any = field(default_factory=InMemoryRegistry)
    index: Any = field(default_factory=InMemoryIndex)
    index_prefix: str = "chunks"
    queue: InMemoryQueue = field(default_factory=InMemoryQueue)
    cache: InMemoryCache | None = field(default_factory=InMemoryCache)
    telemetry: Telemetry = field(default_factory=Telemetry)
    embedder: CountingEmbedder = field(default_factory=lambda: CountingEmbedder(HashingEmbedder()))
    records: list[dict[str, Any]] = field(default_factory=list)
    alias: str = "chunks"
    held: Any = field(default_factory=InMemoryHeldJobs)
    """The HeldJobs store (used only where the schema's policy is batched)."""
    dead_letters: Any = None
    sqs: InMemorySqsClient = field(default_factory=InMemorySqsClient)
    blobs: InMemoryBlobs = field(default_factory=InMemoryBlobs)
    job_dead_letters: InMemoryJobDeadLetters | None = None
    """Where reconcile jobs go after their last attempt; None: no DLQ, every failure is retried."""
    settings: Settings | None = None
    deleted_at: dict[str, int] = field(default_factory=dict)
    _seq: int = 0

    def __post_init__(self) -> None:
        gen = new_generation(self.embedder.spec, self.chunker, self.index_prefix, generation_id="g1")
        self.generation: Generation = bootstrap(self.registry, self.index, self.alias, gen)

    def embedder_for(self, spec: ModelSpec) -> Embedder:
        return self.embedder

    def services(self) -> Services:
        """The production wiring (``Services``) with this harness's fakes slotted in."""
        settings = self.settings or Settings(index_alias=self.alias, index_prefix=self.index_prefix)
        svc = Services(settings=settings, schema=self.schema, telemetry=self.telemetry)
        svc.__dict__.update(
            source=self.source,
            ledger=self.ledger,
            registry=self.registry,
            index=self.index,
            cache=self.cache,
            queue=self.queue,
            held=self.held,
            dead_letters=self.dead_letters,
            sqs=self.sqs,
            job_dead_letters=self.job_dead_letters,
            progress=InMemoryProgressStore(self.registry),
            blobs=self.blobs,
        )
        svc._embedders[self.embedder.spec.model_id] = self.embedder
        return svc

    @property
    def applier(self) -> ChangeApplier:
        applier: ChangeApplier = self.services().applier()
        return applier

    @property
    def reconciler(self) -> Reconciler:
        reconciler: Reconciler = self.services().reconciler()
        return reconciler

    # ---- the source app --------------------------------------------------------------------------
    def write(self, doc_id: str, **attrs: Any) -> dict[str, Any]:
        """Put a new version of a doc (attributes not given keep their old value)."""
        old = self.source.items.get(doc_id)
        # A well-behaved source app: versions keep rising across deletes and re-creation.
        version = max(int(old["version"]) if old else 0, self.deleted_at.get(doc_id, 0)) + 1
        new = {**(old or {"acl": ["public"], "title": doc_id}), **attrs, "doc_id": doc_id, "version": version}
        new["updated_at"] = time.time()
        self.source.items[doc_id] = new
        self._record("MODIFY" if old else "INSERT", old, new)
        return new

    def put_item(self, item: Mapping[str, Any]) -> None:
        """Put an item exactly as given (its version is the writer's): a SentinelWriter."""
        doc_id = item["doc_id"]
        old = self.source.items.get(doc_id)
        self.source.items[doc_id] = dict(item)
        self._record("MODIFY" if old else "INSERT", old, dict(item))

    def delete_item(self, doc_id: str) -> None:
        if doc_id in self.source.items:
            self.remove(doc_id)

    def remove(self, doc_id: str) -> None:
        old = self.source.items.pop(doc_id)
        self.deleted_at[doc_id] = int(old["version"])
        self._record("REMOVE", old, None)

    def _record(self, event_name: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        self._seq += 1
        keys = {"doc_id": {"S": (new or old or {})["doc_id"]}}
        dynamodb: dict[str, Any] = {
            "Keys": keys,
            "SequenceNumber": str(self._seq).zfill(21),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "ApproximateCreationDateTime": time.time(),
        }
        if old is not None:
            dynamodb["OldImage"] = typed(_decimals(old))
        if new is not None:
            dynamodb["NewImage"] = typed(_decimals(new))
        self.records.append(
            {
                "eventID": str(self._seq),
                "eventName": event_name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": dynamodb,
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/src/stream/x",
            }
        )

    # ---- delivery ----------------------------------------------------------------------------------
    def classify(self, records: list[dict[str, Any]] | None = None) -> list[ReconcileJob]:
        """Deliver stream records (default: all not yet delivered) to the classify side."""
        if records is None:
            records, self.records = self.records, []
        before = len(self.queue.sent)
        applier = self.applier
        applier.begin_batch()
        for record in records:
            applier.handle_record(record)
        applier.end_batch()
        return self.queue.sent[before:]

    def sync(self, jobs: list[ReconcileJob] | None = None) -> list[Any]:
        if jobs is None:
            jobs, self.queue.sent = list(self.queue.sent), []
        return self.reconciler.reconcile(jobs)

    def run(self) -> None:
        self.classify()
        outcomes = self.sync()
        failed = [o for o in outcomes if not o.ok]
        assert not failed, [str(o.error) for o in failed]

    # ---- reading back ----------------------------------------------------------------------------------
    def indexed(self, generation: Generation | None = None) -> dict[str, dict[str, Any]]:
        name = (generation or self.generation).index_name
        if isinstance(self.index, InMemoryIndex):
            return dict(self.index.indices[name])
        self.index.refresh(name)  # a real index: read it back
        fields = ["doc_id", "chunk_key", "text", "acl", "metadata", "content_hash", "source_version"]
        return {
            cid: {**src, "metadata": src.get("metadata") or {}}
            for cid, src in self.index.iter_chunks(name, fields)
        }

    def expected(self, generation: Generation | None = None) -> dict[str, dict[str, Any]]:
        """The oracle: what the index must hold for the current source, computed from scratch."""
        gen = generation or self.generation
        out: dict[str, dict[str, Any]] = {}
        for doc_id, item in self.source.items.items():
            if self.schema.tombstone and self.schema.tombstone.is_tombstoned(item):
                continue
            for chunk in chunker_for(gen.chunker).chunk(self.schema.content_of(item)):
                out[chunk_id(doc_id, chunk.key)] = {
                    "text": chunk.passage,
                    "content_hash": chunk.content_hash,
                    "acl": sorted(item.get("acl") or []),
                    "metadata": {"category": item["category"]} if "category" in item else {},
                }
        return out

    def differences(self, generation: Generation | None = None) -> dict[str, list[str]]:
        got, want = self.indexed(generation), self.expected(generation)
        wrong = [
            cid
            for cid in set(got) & set(want)
            if got[cid]["text"] != want[cid]["text"]
            or got[cid]["acl"] != want[cid]["acl"]
            or got[cid]["metadata"] != want[cid]["metadata"]
        ]
        from collections import Counter

        # A doc may repeat a text (ordinal keys); a duplicate is a copy beyond what the source has.
        have = Counter((g["doc_id"], g["content_hash"]) for g in got.values())
        need = Counter((cid.split(":")[0], w["content_hash"]) for cid, w in want.items())
        return {
            "orphaned": sorted(set(got) - set(want)),
            "missing": sorted(set(want) - set(got)),
            "stale": sorted(wrong),
            "duplicates": sorted(
                f"{d}:{h}" for (d, h), n in have.items() if n > need.get((d, h), 0) and n > 1
            ),
        }


def _decimals(item: dict[str, Any]) -> dict[str, Any]:
    from decimal import Decimal

    return {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in item.items()}


def paragraphs(*words: str, size: int = 30) -> str:
    """A body of distinct paragraphs (one per word), each ~size words long."""
    return "\n\n".join(" ".join(f"{w}{i}" for i in range(size)) for w in words)
