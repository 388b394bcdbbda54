"""Backfill progress, kept on the generation's registry item (``Generation.backfill``) so a
failed or restarted rebuild resumes where it stopped instead of starting over.

Segments run in parallel (one Map branch each) and all write the same registry attribute, so a
plain read-modify-write would lose updates. On DynamoDB each write is a compare-and-set on the
attribute's previous value, retried on conflict; other registries (the in-memory fakes of the
unit tests) are serialised by a process lock.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, Field

from dynembed.core.config import KEYS
from dynembed.core.errors import DynembedError, TransientError, UnknownGenerationError
from dynembed.core.ports import Registry

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


class RegistryProgressStore:
    """Through the Registry port; atomic within one process only (fakes, single-process tools)."""

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


class DynamoProgressStore:
    """Compare-and-set on the registry item's ``backfill`` attribute (a JSON string, as the
    registry adapter stores it), so parallel segments never overwrite each other's pages."""

    def __init__(self, table_name: str, client: Any, max_attempts: int = 25) -> None:
        self.table_name = table_name
        self.client = client
        self.max_attempts = max_attempts

    def _read(self, generation_id: str) -> str | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key={KEYS.registry_hash: {"S": generation_id}},
            ConsistentRead=True,
            ProjectionExpression=f"{KEYS.registry_hash}, backfill",
        )
        item = response.get("Item")
        if item is None:
            raise UnknownGenerationError(f"unknown generation {generation_id!r}")
        raw = item.get("backfill", {}).get("S")
        return str(raw) if raw is not None else None

    def load(self, generation_id: str) -> BackfillProgress | None:
        raw = self._read(generation_id)
        return BackfillProgress.from_record(json.loads(raw)) if raw else None

    def change(self, generation_id: str, mutate: Mutation) -> BackfillProgress:
        from botocore.exceptions import ClientError

        for attempt in range(self.max_attempts):
            old = self._read(generation_id)
            progress = mutate(BackfillProgress.from_record(json.loads(old)) if old else None)
            values: dict[str, Any] = {
                ":new": {"S": json.dumps(progress.record())},
                ":now": {"N": repr(time.time())},
            }
            if old is None:
                condition = "attribute_exists(#id) AND attribute_not_exists(backfill)"
            else:
                condition = "attribute_exists(#id) AND backfill = :old"
                values[":old"] = {"S": old}
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={KEYS.registry_hash: {"S": generation_id}},
                    UpdateExpression="SET backfill = :new, updated_at = :now",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#id": KEYS.registry_hash},
                    ExpressionAttributeValues=values,
                )
                return progress
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise TransientError(
            f"backfill progress of {generation_id}: {self.max_attempts} conflicting writes in a row"
        )


def progress_store(svc: Any) -> ProgressStore:
    """The compare-and-set store on the DynamoDB registry, else the lock-serialised one."""
    from dynembed.adapters.dynamodb import DynamoRegistry

    if isinstance(svc.registry, DynamoRegistry):
        import boto3

        return DynamoProgressStore(
            svc.settings.registry_table, boto3.client("dynamodb", region_name=svc.settings.region)
        )
    return RegistryProgressStore(svc.registry)


def require(progress: BackfillProgress | None, generation_id: str) -> BackfillProgress:
    if progress is None:
        raise DynembedError(
            f"generation {generation_id} has no backfill progress: run its Register step first"
        )
    return progress
