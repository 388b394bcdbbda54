"""Ports: what the domain needs from the outside world. Adapters live beside the domain
(``dynembed.adapters``, ``dynembed.index``, ``dynembed.embedders``); tests pass fakes that
implement the same Protocols."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from dynembed.core.models import (
    ChunkDocument,
    Generation,
    ModelSpec,
    QuantizerState,
    ReconcileJob,
    RetrievalSpec,
    VectorSpec,
)
from dynembed.core.samples import LiveQuery, QuerySample, ShadowComparison, ShadowJob


@runtime_checkable
class Embedder(Protocol):
    """One embedding model. ``spec.model_id`` is what invariant I1 compares."""

    spec: ModelSpec

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for passages, batched as the provider prefers; same order as ``texts``."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """Vector for a search query (some models embed queries differently)."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for many search queries at once (a golden set), batched as the provider
        allows; each is the vector ``embed_query`` gives that text (within float tolerance),
        in the order of ``texts``."""
        ...


class SourceReader(Protocol):
    """The source table, read-only."""

    def get_item(self, doc_id: str) -> dict[str, Any] | None:
        """Strongly consistent read; plain Python values (Decimal numbers, sets)."""
        ...

    def get_items(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Strongly consistent batch read; missing docs are left out."""
        ...

    def scan_segment(
        self, segment: int, total_segments: int, start_key: dict[str, Any] | None, limit: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a parallel scan; returns (items, the next page's start key, JSON-safe,
        or None after the last page)."""
        ...

    def approximate_count(self) -> int | None:
        """The table's item count as DynamoDB last published it (ItemCount, refreshed about
        every six hours); None when unknown."""
        ...


@dataclass
class LedgerEntry:
    """What dynembed believes is in one generation's index for one doc."""

    doc_id: str
    generation: str
    source_version: int = -1
    chunk_keys: list[str] = field(default_factory=list)
    pending_keys: list[str] = field(default_factory=list)
    """Written before the index is touched, cleared at commit: a crash leaves them findable."""
    attrs_hash: str = ""
    """Hash of the ACL/tenant/metadata the chunks carry, to notice attribute drift."""
    state: str = "committed"
    """committed | pending | deleted"""
    source_updated_at: float | None = None
    indexed_at: float | None = None


class Ledger(Protocol):
    def get(self, doc_id: str, generation: str) -> LedgerEntry | None: ...

    def get_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], LedgerEntry]:
        """Consistent batch read of (doc, generation) entries; missing ones are left out."""
        ...

    def begin(self, doc_id: str, generation: str, pending_keys: Sequence[str], source_version: int) -> None:
        """Record the keys about to be written. Raises VersionConflictError when the ledger
        already holds a newer version."""
        ...

    def commit(self, entry: LedgerEntry) -> None:
        """Store the new state, clearing pending keys; only if the version does not go back
        (VersionConflictError otherwise)."""
        ...

    def scan(self, generation: str) -> Iterator[LedgerEntry]: ...

    def delete_generation(self, generation: str) -> int:
        """Remove every entry of one generation (retire); returns how many."""
        ...


class Registry(Protocol):
    """The generation registry."""

    def get(self, generation_id: str) -> Generation:
        """Raises UnknownGenerationError."""
        ...

    def list(self) -> list[Generation]: ...

    def put(self, generation: Generation) -> None:
        """Store as given (an existing id is overwritten); ``updated_at`` becomes now."""
        ...

    def create(self, generation: Generation) -> None:
        """Register a new generation; an existing id is left alone (idempotent on retries)."""
        ...

    def update(self, generation_id: str, **changes: Any) -> Generation:
        """Change status, write_target, report or backfill (anything else: ValueError) and bump
        ``updated_at``; UnknownGenerationError when the id is not registered."""
        ...


@dataclass
class WriteReport:
    written: int = 0
    deleted: int = 0
    conflicts: int = 0
    """409s: a newer version is already there (expected under reordering)."""
    missing: int = 0
    """Deletes of chunks that were not there."""


@dataclass
class SearchHit:
    id: str
    score: float
    source: dict[str, Any]


@dataclass(frozen=True)
class IndexSearch:
    """One search of one generation's index, with what the index needs to answer it the way
    the generation was built: its retrieval (vector or hybrid fusion) and vector precision."""

    vector: Sequence[float]
    k: int
    filter: Mapping[str, Any] | None = None
    """Access, tenant and caller filters: applied inside every sub-query, before ranking."""
    text: str | None = None
    """The query text, for the lexical sub-query of hybrid retrieval."""
    retrieval: RetrievalSpec = field(default_factory=RetrievalSpec)
    vectors: VectorSpec = field(default_factory=VectorSpec)
    quantizer: QuantizerState | None = None
    pipeline: str | None = None
    """The search pipeline a hybrid generation's index fuses with (native mode)."""

    def __post_init__(self) -> None:
        if self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k}")
        if self.retrieval.hybrid and not (self.text or "").strip():
            raise ValueError("hybrid retrieval needs the query text")

    @property
    def depth(self) -> int:
        """Hits each sub-query contributes (k for vector retrieval)."""
        return self.retrieval.depth(self.k) if self.retrieval.hybrid else self.k


class ChunkIndex(Protocol):
    """The search index (OpenSearch), addressed by index name or alias."""

    def ensure_index(self, generation: Generation) -> None: ...

    def delete_index(self, index: str) -> None: ...

    def write_chunks(
        self, index: str, docs: Sequence[ChunkDocument], versions: Sequence[int] | None = None
    ) -> WriteReport:
        """Index with external versions (``versions``, one per doc; default: each doc's
        source_version); inspects every bulk item."""
        ...

    def delete_chunks(self, index: str, ids_versions: Sequence[tuple[str, int]]) -> WriteReport: ...

    def get_chunks(
        self, index: str, ids: Sequence[str], exclude: Sequence[str] = ()
    ) -> dict[str, dict[str, Any]]:
        """Stored sources by id, without the ``exclude`` fields (missing ids are left out)."""
        ...

    def knn_search(
        self, index: str, vector: Sequence[float], k: int, filter_query: Mapping[str, Any] | None
    ) -> list[SearchHit]:
        """Top-k by vector similarity among docs that match ``filter_query`` (pre-filter)."""
        ...

    def search(self, index: str, request: IndexSearch) -> list[SearchHit]:
        """Top-k as the request's generation retrieves: k-NN at its precision, or hybrid
        (BM25 + k-NN fused), the filter inside every sub-query."""
        ...

    def iter_chunks(self, index: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every chunk (id, selected fields), for audits and read-backs."""
        ...

    def refresh(self, index: str) -> None: ...

    def alias_target(self, alias: str) -> str | None: ...

    def swap_alias(self, alias: str, new_index: str, old_index: str | None) -> None:
        """One atomic ``_aliases`` request (invariant I6)."""
        ...


class JobQueue(Protocol):
    def send(self, jobs: Sequence[ReconcileJob]) -> None:
        """Send in batches; raises TransientError if any message could not be sent."""
        ...

    def depth(self) -> int:
        """Jobs waiting, delayed or in flight (approximate, as SQS counts them)."""
        ...


class HeldJobs(Protocol):
    """Batched update policy: jobs held and coalesced per doc until the drain sends them."""

    def hold(self, job: ReconcileJob, max_delay_s: float, now: float | None = None) -> None:
        """Hold ``job``; the first edit of a doc sets its due time, later ones only replace the job."""
        ...

    def due(self, now: float | None = None, flush_all: bool = False) -> list[tuple[ReconcileJob, int]]:
        """Jobs due by ``now`` (every held one with ``flush_all``), each with its edit count."""
        ...

    def count(self) -> int: ...

    def release(self, job: ReconcileJob) -> bool:
        """Forget a drained job, unless a newer edit arrived meanwhile (False: it stays held)."""
        ...


class DeadLetters(Protocol):
    """Malformed stream records, with their reason: retrying cannot fix them (I7)."""

    def send(self, body: Mapping[str, Any]) -> None: ...


class JobDeadLetters(Protocol):
    """Reconcile jobs that failed their last allowed attempt, or can never succeed (I7)."""

    def send(self, body: str, reason: str, attempts: int) -> None:
        """Keep the job's message ``body`` with why it failed and after how many attempts."""
        ...


class BlobStore(Protocol):
    """Whole objects by location: an ``s3://bucket/key`` URI or a local file path."""

    def read(self, location: str) -> bytes:
        """ConfigError when it is missing or unreadable; TransientError when worth retrying."""
        ...

    def write(self, location: str, data: bytes, content_type: str = "text/plain") -> str:
        """Store ``data``; returns the location as it can be found again (an absolute path)."""
        ...


class EmbeddingCache(Protocol):
    """(model id, content hash) → vector, so a text is embedded once per model (I4)."""

    def get_many(self, model_id: str, content_hashes: Sequence[str]) -> dict[str, list[float]]: ...

    def put_many(self, model_id: str, vectors: Mapping[str, Sequence[float]]) -> None: ...


MetricUnitName = Literal["Count", "Seconds", "Milliseconds", "None"]


class MetricsSink(Protocol):
    """Where ``Telemetry`` publishes beyond the process: CloudWatch (EMF) in Lambda."""

    def emit(self, name: str, value: float, unit: MetricUnitName, dimensions: Mapping[str, str]) -> None:
        """One data point; ``dimensions`` come on top of ``service``."""
        ...


class ApprovalChannel(Protocol):
    """Answers a workflow task that waits for a token (the Step Functions client fits)."""

    def send_task_success(self, *, taskToken: str, output: str) -> object: ...


# ---- live traffic: signals and shadow searches (dynembed.core.samples) ----------------------------


class QuerySignals(Protocol):
    """Told of every live search (through the alias) after its response is built; decides for
    itself what to sample. Must never raise: a broken signal store cannot fail a search."""

    def observe(self, query: LiveQuery) -> None: ...


class QuerySampleStore(Protocol):
    """Sampled live queries and shadow comparisons, kept for a window (TTL)."""

    def put_sample(self, sample: QuerySample) -> None: ...

    def samples(self, generation: str, since: float | None = None, limit: int = 1000) -> list[QuerySample]:
        """The newest ``limit`` samples of ``generation`` taken at or after ``since``, oldest first."""
        ...

    def put_comparison(self, comparison: ShadowComparison) -> None: ...

    def comparisons(self, candidate: str, limit: int = 1000) -> list[ShadowComparison]:
        """The newest ``limit`` shadow comparisons of ``candidate``, oldest first."""
        ...


class ShadowQueue(Protocol):
    def send(self, job: ShadowJob) -> None:
        """Raises TransientError when the job was not taken."""
        ...


class SentinelWriter(Protocol):
    """The source table, written: only the end-to-end sentinel writes, and only its own items."""

    def put_item(self, item: Mapping[str, Any]) -> None: ...

    def delete_item(self, doc_id: str) -> None: ...
