"""Value objects shared by every flow: decisions, jobs, chunks, generations."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class GenerationStatus(StrEnum):
    BUILDING = "building"
    EVALUATING = "evaluating"
    ACTIVE = "active"
    STANDBY = "standby"
    FAILED = "failed"
    RETIRED = "retired"


class Generation(BaseModel):
    """One index build: model + chunker + schema version."""

    id: str
    index_name: str
    model: ModelSpec
    chunker: ChunkerSpec
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
