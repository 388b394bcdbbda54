"""Backfill progress, kept on the generation's registry item (``Generation.backfill``) so a
failed or restarted rebuild resumes where it stopped instead of starting over.

Segments run in parallel (one Map branch each) and all write the same registry attribute, so a
plain read-modify-write would lose updates. On DynamoDB each write is a compare-and-set on the
attribute's previous value, retried on conflict (``adapters.dynamodb.registry.DynamoProgressStore``);
the unit tests' fake (``tests.fakes.InMemoryProgressStore``) serialises writes with a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, Field

from dynembed.core.errors import DynembedError

MAX_FAILED_DOC_IDS = 100
"""Failed doc ids kept per segment (the count goes on): the registry item must stay small."""
MAX_FAILED_DOC_IDS_TOTAL = 200
"""... and across all segments: a thousand segments of a hundred ids each would not fit."""


class SegmentProgress(BaseModel):
    """One parallel-scan segment: where the next page starts and what the pages cost."""

    last_key: dict[str, Any] | None = None
    """The scan's LastEvaluatedKey after the last recorded page (JSON-safe)."""
    done: bool = False
    pages: int = 0
    docs: int = 0
    computed: int = 0
    """Chunk texts embedded by the model."""
    reused: int = 0
    """Chunk texts whose vector came from the embedding cache or an earlier run."""
    tokens: int = 0
    """Tokens of the texts embedded, counted as the estimate counts them (dynembed.cost.tokens)."""
    failures: int = 0
    failed_docs: list[str] = Field(default_factory=list)
    """Docs that can never be indexed as they are (malformed, refused): up to MAX_FAILED_DOC_IDS."""
    stopped: str | None = None
    """Why this segment's child execution failed (``Error: message``), cleared when it resumes."""


class BackfillProgress(BaseModel):
    total_segments: int = Field(ge=1)
    page_size: int = Field(ge=1)
    segments: dict[int, SegmentProgress]
    runs: int = 1
    """Workflow runs that worked on this backfill (more than one: it was resumed)."""
    started_at: float = Field(default_factory=time.time)
    finished_at: float | None = None

    @classmethod
    def fresh(cls, total_segments: int, page_size: int) -> BackfillProgress:
        return cls(
            total_segments=total_segments,
            page_size=page_size,
            segments={s: SegmentProgress() for s in range(total_segments)},
        )

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> BackfillProgress | None:
        """The stored progress, or None when the backfill never started."""
        return cls.model_validate(record) if record and "segments" in record else None

    def record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def done(self) -> bool:
        return all(s.done for s in self.segments.values())

    @property
    def pending_segments(self) -> list[int]:
        return sorted(n for n, s in self.segments.items() if not s.done)

    def total(self, field: str) -> int:
        return sum(int(getattr(s, field)) for s in self.segments.values())

    @property
    def failed_docs(self) -> list[str]:
        return sorted({d for s in self.segments.values() for d in s.failed_docs})


Mutation = Callable[[BackfillProgress | None], BackfillProgress]


class ProgressStore(Protocol):
    def load(self, generation_id: str) -> BackfillProgress | None: ...

    def change(self, generation_id: str, mutate: Mutation) -> BackfillProgress:
        """Apply ``mutate`` to the stored progress atomically and return the result."""
        ...


def require(progress: BackfillProgress | None, generation_id: str) -> BackfillProgress:
    if progress is None:
        raise DynembedError(
            f"generation {generation_id} has no backfill progress: run its Register step first"
        )
    return progress
