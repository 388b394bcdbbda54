"""A pipeline wired on in-memory fakes: the real classify decisions, ChangeApplier and
Reconciler, with stream records built like DynamoDB Streams builds them. Unit and property
tests drive it; integration tests drive the same code on moto + osmem."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
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
    InMemoryDeadLetters,
    InMemoryHeldJobs,
    InMemoryIndex,
    InMemoryJobDeadLetters,
    InMemoryLedger,
    InMemoryProgressStore,
    InMemoryQuerySamples,
    InMemoryQueue,
    InMemoryRegistry,
    InMemoryShadowQueue,
    InMemorySource,
    InMemorySqsClient,
    services_over,
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
    samples: InMemoryQuerySamples = field(default_factory=InMemoryQuerySamples)
    shadow_queue: InMemoryShadowQueue = field(default_factory=InMemoryShadowQueue)
    signals: Any = None
    """A ``QuerySignals`` for the search flow (None: live searches are not observed)."""
    embedder: CountingEmbedder = field(default_factory=lambda: CountingEmbedder(HashingEmbedder()))
    records: list[dict[str, Any]] = field(default_factory=list)
    alias: str = "chunks"
    held: Any = field(default_factory=InMemoryHeldJobs)
    """The HeldJobs store (used only where the schema's policy is batched)."""
    dead_letters: InMemoryDeadLetters | None = field(default_factory=InMemoryDeadLetters)
    sqs: InMemorySqsClient = field(default_factory=InMemorySqsClient)
    blobs: InMemoryBlobs = field(default_factory=InMemoryBlobs)
    job_dead_letters: InMemoryJobDeadLetters | None = None
    """Where reconcile jobs go after their last attempt; None: no DLQ, every failure is retried."""
    settings: Settings | None = None
    high: dict[str, int] = field(default_factory=dict)
    """Per doc, the highest valid version ever written (deletes included): a well-behaved app
    keeps counting from there."""
    _seq: int = 0

    def __post_init__(self) -> None:
        gen = new_generation(self.embedder.spec, self.chunker, self.index_prefix, generation_id="g1")
        self.generation: Generation = bootstrap(self.registry, self.index, self.alias, gen)

    def embedder_for(self, spec: ModelSpec) -> Embedder:
        return self.embedder

    def services(self) -> Services:
        """The production wiring (``Services``) with this harness's fakes slotted in."""
        settings = self.settings or Settings(index_alias=self.alias, index_prefix=self.index_prefix)
        return services_over(
            settings,
            self.schema,
            self.telemetry,
            embedders=[self.embedder],
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
            query_samples=self.samples,
            shadow_queue=self.shadow_queue,
            query_signals=self.signals,
        )

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
        # A well-behaved source app: versions keep rising across deletes and re-creation.
        return self.put(doc_id, {**attrs, "version": self.high.get(doc_id, 0) + 1})

    def put(self, doc_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
        """Put exactly these attributes over the current item (a ``None`` value removes one), as
        a source app that may go back in version or write wrongly typed attributes would."""
        old = self.source.items.get(doc_id)
        new = {**(old or {"acl": ["public"], "title": doc_id}), **attrs, "doc_id": doc_id}
        new = {k: v for k, v in new.items() if v is not None}
        if "updated_at" not in attrs:  # {"updated_at": None}: an app that does not stamp its writes
            new["updated_at"] = time.time()
        version = new.get("version")
        if isinstance(version, int | Decimal) and not isinstance(version, bool) and 0 <= version < 2**61:
            self.high[doc_id] = max(self.high.get(doc_id, 0), int(version))
        self.source.items[doc_id] = new
        self._record("MODIFY" if old else "INSERT", old, new)
        return new

    def put_item(self, item: Mapping[str, Any]) -> None:
        """Put a whole item, its version the writer's (a SentinelWriter, as the sentinel uses it)."""
        self.put(str(item["doc_id"]), dict(item))

    def delete_item(self, doc_id: str) -> None:
        if doc_id in self.source.items:
            self.remove(doc_id)

    def remove(self, doc_id: str) -> None:
        old = self.source.items.pop(doc_id)
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
        fields = [
            "doc_id",
            "chunk_key",
            "text",
            "acl",
            "tenant",
            "metadata",
            "content_hash",
            "source_version",
        ]
        return {
            cid: {**src, "metadata": src.get("metadata") or {}}
            for cid, src in self.index.iter_chunks(name, fields)
        }

    def readable_by(self, principal: str, generation: Generation | None = None) -> set[str]:
        """Docs with at least one chunk ``principal`` may read (named in its ACL, or public)."""
        public = self.schema.public_principal
        return {
            c["doc_id"]
            for c in self.indexed(generation).values()
            if {principal, public} & set(c["acl"] or [])
        }

    def expected(
        self, generation: Generation | None = None, exclude: Collection[str] = ()
    ) -> dict[str, dict[str, Any]]:
        """The oracle: what the index must hold for the current source, computed from scratch.
        Malformed items hold nothing (their chunks are hidden); ``exclude`` leaves docs out."""
        gen = generation or self.generation
        out: dict[str, dict[str, Any]] = {}
        for doc_id, item in self.source.items.items():
            if doc_id in exclude or self.schema.problems(item):
                continue
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

    def differences(
        self, generation: Generation | None = None, exclude: Collection[str] = ()
    ) -> dict[str, list[str]]:
        got = {cid: c for cid, c in self.indexed(generation).items() if c["doc_id"] not in exclude}
        want = self.expected(generation, exclude)
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

    def access_violations(self, docs: set[str] | None = None) -> list[str]:
        """The access oracle: every indexed chunk (of ``docs``, default all) whose doc's current
        source item does not grant each principal that may read the chunk: the item is gone,
        tombstoned or malformed, or the chunk names a principal (or a tenant) it does not."""
        public = self.schema.public_principal
        wrong = []
        for cid, chunk in self.indexed().items():
            doc_id = chunk["doc_id"]
            if docs is not None and doc_id not in docs:
                continue
            item = self.source.items.get(doc_id)
            if item is None or self.schema.problems(item):
                wrong.append(f"{cid}: served though its item is {'gone' if item is None else 'malformed'}")
                continue
            if self.schema.tombstone and self.schema.tombstone.is_tombstoned(item):
                wrong.append(f"{cid}: served though its item is tombstoned")
                continue
            granted, readers = set(self.schema.acl_of(item)), set(chunk["acl"] or [])
            if public not in granted and (public in readers or not readers <= granted):
                wrong.append(f"{cid}: readable by {sorted(readers - granted)}, granted {sorted(granted)}")
            if (chunk.get("tenant") or None) != self.schema.tenant_of(item):
                wrong.append(f"{cid}: tenant {chunk.get('tenant')!r}, item's {self.schema.tenant_of(item)!r}")
        return wrong


def _decimals(item: dict[str, Any]) -> dict[str, Any]:
    return {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in item.items()}


def paragraphs(*words: str, size: int = 30) -> str:
    """A body of distinct paragraphs (one per word), each ~size words long."""
    return "\n\n".join(" ".join(f"{w}{i}" for i in range(size)) for w in words)
