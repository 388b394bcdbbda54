"""Value objects shared by every flow: decisions, jobs, chunks, generations."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ChangeKind(StrEnum):
    SKIP = "skip"
    METADATA = "metadata"
    ACCESS = "access"
    CONTENT = "content"
    DELETE = "delete"


class Decision(BaseModel):
    """What one source change costs. ``actions`` lists every step in the order to apply them:
    an access change that comes with a content change yields ``(ACCESS, CONTENT)`` so the ACL
    is patched at once and the content job follows."""

    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    """The most expensive action (what the change is reported as)."""
    actions: tuple[ChangeKind, ...]
    doc_id: str
    source_version: int | None
    """None when the image that carries it is unreadable (a REMOVE whose old image is malformed):
    the applier then acts on the current source item alone."""
    changed: tuple[str, ...] = ()
    """Attributes that differ between the old and new image, sorted."""
    reason: str
    source_updated_at: float | None = None
    tenant: str | None = None
    source_type: str | None = None


class ReconcileJob(BaseModel):
    """An SQS message: bring ``doc_id`` in line with its current source item."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str = Field(min_length=1)
    min_source_version: int = Field(ge=0)
    """The version that caused the job; reconcile reads the source, which may be newer."""
    reason: str = "content"
    source_updated_at: float | None = None
    enqueued_at: float = Field(default_factory=time.time)
    generations: list[str] | None = None
    """Only these generations (targeted backfill); None means every write target."""
    tenant: str | None = None
    source_type: str | None = None
    force: bool = False
    """Rewrite every chunk (vectors still come from the cache): repairs after a detected race
    or an audit finding, when the ledger cannot be trusted for this doc."""


class DistanceSpace(StrEnum):
    COSINE = "cosinesimil"
    INNER_PRODUCT = "innerproduct"
    L2 = "l2"


class ModelSpec(BaseModel):
    """One embedding model: its id is what invariant I1 compares."""

    model_config = ConfigDict(frozen=True)

    provider: str
    name: str
    version: str = "1"
    dimension: int = Field(gt=0)
    normalized: bool = True
    space: DistanceSpace = DistanceSpace.COSINE

    @property
    def model_id(self) -> str:
        return f"{self.provider}/{self.name}@{self.version}:{self.dimension}"


class ChunkerSpec(BaseModel):
    """A chunker with its parameters; ``version`` changes whenever a parameter changes."""

    model_config = ConfigDict(frozen=True)

    name: str = "structural"
    target_chars: int = Field(default=1000, gt=0)
    max_chars: int = Field(default=2000, gt=0)
    min_chars: int = Field(default=300, ge=0)
    max_doc_chars: int | None = None
    """Truncate documents beyond this size (a deliberately bad chunker for gate tests)."""

    @property
    def version(self) -> str:
        import hashlib

        params = self.model_dump_json(exclude={"name"})
        return f"{self.name}-{hashlib.sha256(params.encode()).hexdigest()[:8]}"


class Chunk(BaseModel):
    """A piece of a document as the chunker cut it."""

    model_config = ConfigDict(frozen=True)

    key: str
    """From the text (plus an ordinal for repeated text), never from the position."""
    index: int
    text: str
    """What the model embeds: the title, then the passage."""
    content_hash: str
    passage: str = ""
    """The document's own text for this chunk (what the index stores and search shows)."""


class RetrievalMode(StrEnum):
    VECTOR = "vector"
    HYBRID = "hybrid"


class FusionMethod(StrEnum):
    LINEAR = "linear"
    """min-max normalisation per sub-query, then the weighted arithmetic mean (OpenSearch's
    normalization-processor with ``min_max`` + ``arithmetic_mean``)."""
    RRF = "rrf"
    """Reciprocal rank fusion: sum of ``weight / (rank_constant + rank)`` (score-ranker-processor)."""


HYBRID_DEFAULTS: dict[str, Any] = {
    "lexical_weight": 0.3,
    "fusion": FusionMethod.LINEAR,
    "candidates": 100,
    "analyzer": "english",
}
RRF_DEFAULT_RANK_CONSTANT = 60
_HYBRID_ONLY = ("lexical_weight", "fusion", "rank_constant", "candidates", "analyzer")


class RetrievalSpec(BaseModel):
    """How a generation retrieves: k-NN alone (``vector``) or BM25 + k-NN fused (``hybrid``).

    Hybrid fields are filled with their defaults when ``mode`` is hybrid and must be absent
    when it is vector, so two equal settings always compare (and hash) equal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: RetrievalMode = RetrievalMode.VECTOR
    lexical_weight: float | None = Field(default=None, ge=0.0, le=1.0)
    """Weight of the lexical (BM25) sub-query; the vector sub-query gets ``1 - lexical_weight``."""
    fusion: FusionMethod | None = None
    rank_constant: int | None = Field(default=None, ge=1, le=10_000)
    """RRF only (OpenSearch's range; default 60)."""
    candidates: int | None = Field(default=None, ge=1, le=10_000)
    """Hits each sub-query contributes to the fusion (the ``size``/``k`` of each sub-query)."""
    analyzer: Literal["english", "standard"] | None = None
    """Analyzer of the ``text`` field that BM25 searches."""

    @model_validator(mode="before")
    @classmethod
    def _fill_hybrid_defaults(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"mode": data}
        if isinstance(data, dict) and str(data.get("mode", "")) == RetrievalMode.HYBRID.value:
            data = {**HYBRID_DEFAULTS, **{k: v for k, v in data.items() if v is not None}}
            if str(data["fusion"]) == FusionMethod.RRF.value:
                data.setdefault("rank_constant", RRF_DEFAULT_RANK_CONSTANT)
        return data

    @model_validator(mode="after")
    def _fields_fit_the_mode(self) -> RetrievalSpec:
        if self.mode is RetrievalMode.VECTOR:
            given = [name for name in _HYBRID_ONLY if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only with mode 'hybrid'")
        elif self.fusion is not FusionMethod.RRF and self.rank_constant is not None:
            raise ValueError("rank_constant: only with fusion 'rrf'")
        return self

    @property
    def hybrid(self) -> bool:
        return self.mode is RetrievalMode.HYBRID

    def weights(self) -> tuple[float, float]:
        """(lexical, vector), in the order of the hybrid query's sub-queries."""
        lexical = float(self.lexical_weight or 0.0)
        return lexical, 1.0 - lexical

    def depth(self, k: int) -> int:
        """Hits per sub-query for a search of ``k`` results."""
        return max(k, self.candidates or k)

    def describe(self) -> str:
        if not self.hybrid:
            return "vector"
        if self.fusion is FusionMethod.RRF:
            return f"hybrid rrf(c={self.rank_constant}) lexical {self.lexical_weight:.2f}"
        return f"hybrid linear lexical {self.lexical_weight:.2f}"

    @property
    def slug(self) -> str:
        if not self.hybrid:
            return ""
        return f"hybrid-{self.fusion.value if self.fusion else 'linear'}"


class VectorPrecision(StrEnum):
    """What each vector costs in the engine, and the engine option that gives it."""

    FLOAT32 = "float32"
    """faiss HNSW, no encoder (1x)."""
    FLOAT16 = "float16"
    """faiss scalar quantizer fp16 (2x)."""
    BYTE = "byte"
    """Lucene scalar quantizer, 7 bits in a byte (4x)."""
    BINARY = "binary"
    """faiss 1-bit binary quantization (32x)."""


COMPRESSION_LEVEL: dict[VectorPrecision, str] = {
    VectorPrecision.FLOAT32: "1x",
    VectorPrecision.FLOAT16: "2x",
    VectorPrecision.BYTE: "4x",
    VectorPrecision.BINARY: "32x",
}


class VectorSpec(BaseModel):
    """Vector precision and storage. Documents always carry float32 vectors; the engine
    quantizes them (so a precision-only generation reuses every stored vector), and the local
    exact scorer applies the same quantization so the gate measures the loss."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    precision: VectorPrecision = VectorPrecision.FLOAT32
    on_disk: bool = False
    """``mode: on_disk``: only the quantized graph in memory, full-precision vectors on disk."""
    oversample: float | None = Field(default=None, ge=1.0, le=100.0)
    """Rescoring: the first pass takes ``oversample * k`` candidates (at least 100) by quantized
    score, then re-scores them with the full-precision vectors."""

    @model_validator(mode="after")
    def _quantized_options(self) -> VectorSpec:
        if self.precision is VectorPrecision.FLOAT32:
            if self.on_disk:
                raise ValueError("on_disk: needs a compressed precision (float16, byte or binary)")
            if self.oversample is not None:
                raise ValueError("oversample: full-precision vectors need no rescoring")
        return self

    @property
    def compression_level(self) -> str:
        return COMPRESSION_LEVEL[self.precision]

    @property
    def quantized(self) -> bool:
        return self.precision is not VectorPrecision.FLOAT32

    def describe(self) -> str:
        parts = [self.precision.value]
        if self.on_disk:
            parts.append("on disk")
        if self.oversample is not None:
            parts.append(f"rescore x{self.oversample:g}")
        return ", ".join(parts)

    @property
    def slug(self) -> str:
        if not self.quantized:
            return ""
        return self.precision.value + ("-disk" if self.on_disk else "")


class QuantizerState(BaseModel):
    """What a quantizer learned from the corpus, stored with the generation so every local
    search quantizes alike (the engine trains its own per segment, from the same kind of data)."""

    model_config = ConfigDict(frozen=True)

    precision: VectorPrecision
    trained_on: int = Field(ge=0)
    """Vectors sampled."""
    lower: float | None = None
    upper: float | None = None
    """byte: the value range mapped onto the 7-bit levels (quantiles at ``confidence_interval``)."""
    confidence_interval: float | None = None
    thresholds: str | None = None
    """binary: per-dimension means (a bit is set when the value is above), float32 base64."""
    trained_at: float = Field(default_factory=time.time)


class ScoreThreshold(BaseModel):
    """The score below which a top hit is unlikely to be relevant, calibrated on the golden set
    when the generation was evaluated (see ``quality.evaluation.calibrate_threshold``)."""

    model_config = ConfigDict(frozen=True)

    value: float
    method: Literal["f1", "precision"]
    target_precision: float | None = None
    precision: float
    """Of "top-1 is relevant" among queries whose top score is >= value."""
    recall: float
    f1: float
    queries: int = Field(ge=0)
    """Judged queries with at least one hit."""
    relevant_top1: int = Field(ge=0)
    calibrated_at: float = Field(default_factory=time.time)


class GenerationStatus(StrEnum):
    BUILDING = "building"
    EVALUATING = "evaluating"
    ACTIVE = "active"
    STANDBY = "standby"
    FAILED = "failed"
    RETIRED = "retired"


class Generation(BaseModel):
    """One index build: model + chunker + retrieval + vector settings + schema version."""

    id: str
    index_name: str
    model: ModelSpec
    chunker: ChunkerSpec
    retrieval: RetrievalSpec = Field(default_factory=RetrievalSpec)
    vectors: VectorSpec = Field(default_factory=VectorSpec)
    quantizer: QuantizerState | None = None
    threshold: ScoreThreshold | None = None
    schema_version: int = 1
    status: GenerationStatus = GenerationStatus.BUILDING
    write_target: bool = False
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    report: dict[str, Any] | None = None
    backfill: dict[str, Any] = Field(default_factory=dict)
    canary: dict[str, Any] | None = None
    """The latest canary report on this generation (``dynembed.quality.canary``), with the one
    before it as ``previous``."""


class ChunkDocument(BaseModel):
    """What one chunk looks like in the index, with every field needed to explain a result."""

    doc_id: str
    chunk_key: str
    chunk_index: int
    text: str
    content_hash: str
    embedding: list[float]
    source_version: int
    source_updated_at: float | None = None
    indexed_at: float
    model_id: str
    chunker_version: str
    schema_version: int
    generation: str
    tenant: str | None = None
    source_type: str | None = None
    acl: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return chunk_id(self.doc_id, self.chunk_key)


MAX_INDEX_ID_BYTES = 512
"""OpenSearch refuses an ``_id`` longer than 512 bytes (UTF-8)."""
MAX_CHUNK_KEY_BYTES = 16 + 1 + 6
"""``make_chunks``: 16 hex digits of the text's hash, then ``-<ordinal>`` for repeated text; a
DynamoDB item (400 KB) cannot hold a million repeats, so the ordinal has at most 6 digits."""
MAX_DOC_ID_BYTES = MAX_INDEX_ID_BYTES - 1 - MAX_CHUNK_KEY_BYTES
"""488 bytes: the longest doc id whose every chunk id ``<doc_id>:<chunk_key>`` fits ``_id``."""


def chunk_id(doc_id: str, chunk_key: str) -> str:
    return f"{doc_id}:{chunk_key}"


# The end-to-end sentinel (dynembed.quality.sentinel) writes one item of its own to the source
# table. Users never see it: its only principal is reserved (search refuses it and its tenant to
# callers), and the audit and the cost figures leave it out.
SENTINEL_ID_PREFIX = "__dynembed_sentinel__"
"""Every sentinel doc id starts with this (IAM holds the sentinel's writes to it)."""
SENTINEL_DOC_ID = SENTINEL_ID_PREFIX
SENTINEL_TENANT = "__dynembed_sentinel__"
SENTINEL_PRINCIPAL = "__sentinel__"


def is_sentinel(doc_id: str) -> bool:
    return doc_id.startswith(SENTINEL_ID_PREFIX)
