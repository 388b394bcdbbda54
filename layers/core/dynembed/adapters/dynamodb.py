"""DynamoDB adapters: the ledger, the generation registry, the embedding cache, held jobs
(pynamodb models), and the source table reader (boto3: its key schema is the operator's).

Table names are runtime settings, so each model class is bound to its table by a factory.
"""

from __future__ import annotations

import builtins
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

import boto3
import numpy as np
from botocore.exceptions import ClientError
from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.exceptions import DoesNotExist, PutError, PynamoDBException, UpdateError
from pynamodb.models import Model

from dynembed.core.errors import TransientError, UnknownGenerationError, VersionConflictError
from dynembed.core.models import (
    ChunkerSpec,
    Generation,
    GenerationStatus,
    ModelSpec,
    ReconcileJob,
    is_sentinel,
)
from dynembed.core.ports import LedgerEntry

_THROTTLING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}


def _endpoint() -> str | None:
    # boto3 honours AWS_ENDPOINT_URL itself; pynamodb needs the host spelled out.
    return os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL") or None


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _is_condition_failure(exc: PynamoDBException) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


def _raise_transient_or(exc: PynamoDBException, what: str) -> None:
    if exc.cause_response_code in _THROTTLING:
        raise TransientError(f"{what}: {exc.cause_response_code}") from exc
    raise exc


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class LedgerModel(Model):
    """Per (doc, generation): what is in that generation's index for that doc."""

    class Meta:
        table_name = "dynembed-ledger"

    doc_id = UnicodeAttribute(hash_key=True)
    generation = UnicodeAttribute(range_key=True)
    source_version = NumberAttribute(default=-1)
    chunk_keys = ListAttribute(of=UnicodeAttribute, default=list)
    pending_keys = UnicodeSetAttribute(null=True)
    attrs_hash = UnicodeAttribute(default="")
    state = UnicodeAttribute(default="committed")
    source_updated_at = NumberAttribute(null=True)
    indexed_at = NumberAttribute(null=True)


class RegistryModel(Model):
    """One generation: model, chunker, status, write-target flag, evaluation report."""

    class Meta:
        table_name = "dynembed-registry"

    generation_id = UnicodeAttribute(hash_key=True)
    index_name = UnicodeAttribute()
    model = UnicodeAttribute()  # ModelSpec JSON
    chunker = UnicodeAttribute()  # ChunkerSpec JSON
    schema_version = NumberAttribute(default=1)
    status = UnicodeAttribute()
    write_target = BooleanAttribute(default=False)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    report = UnicodeAttribute(null=True)  # JSON
    backfill = UnicodeAttribute(null=True)  # JSON: per-segment progress
    canary = UnicodeAttribute(null=True)  # JSON: the latest canary report


class EmbeddingCacheModel(Model):
    """(model id, content hash) → float32 vector."""

    class Meta:
        table_name = "dynembed-embedding-cache"

    cache_key = UnicodeAttribute(hash_key=True)
    vector = BinaryAttribute(legacy_encoding=False)
    created_at = NumberAttribute()


class HeldJobModel(Model):
    """A batched-policy reconcile job waiting for its drain; one per doc (coalesced)."""

    class Meta:
        table_name = "dynembed-held-jobs"

    doc_id = UnicodeAttribute(hash_key=True)
    min_source_version = NumberAttribute()
    first_held_at = NumberAttribute()
    due_at = NumberAttribute()
    source_updated_at = NumberAttribute(null=True)
    edits = NumberAttribute(default=1)
    job = UnicodeAttribute()  # the newest ReconcileJob JSON


def bind(model: type[Model], table_name: str) -> type[Model]:
    """A subclass of ``model`` bound to ``table_name`` and the current endpoint and region."""
    return _bind(model, table_name, _endpoint(), _region())


@cache
def _bind(model: type[Model], table_name: str, host: str | None, region: str) -> type[Model]:
    meta = type(
        "Meta", (), {"table_name": table_name, "region": region, "host": host, "max_retry_attempts": 5}
    )
    return type(f"{model.__name__}_{table_name}", (model,), {"Meta": meta})


# ---------------------------------------------------------------------------------------------
# Ledger
# ---------------------------------------------------------------------------------------------


class DynamoLedger:
    """The ledger port on DynamoDB; versions only rise (conditional writes)."""

    def __init__(self, table_name: str) -> None:
        self.model: type[LedgerModel] = bind(LedgerModel, table_name)  # type: ignore[assignment]

    def _not_newer(self, version: int) -> Any:
        """No higher version, and no delete at this very version (a doc deleted at v must not
        come back from a reconcile that read v just before the delete)."""
        m = self.model
        return (
            m.source_version.does_not_exist()
            | (m.source_version < version)
            | ((m.source_version == version) & (m.state != "deleted"))
        )

    def get(self, doc_id: str, generation: str) -> LedgerEntry | None:
        try:
            row = self.model.get(doc_id, generation, consistent_read=True)
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            _raise_transient_or(exc, f"ledger get {doc_id}")
            raise
        return _to_entry(row)

    def get_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], LedgerEntry]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        try:
            rows = list(self.model.batch_get(wanted, consistent_read=True))
        except PynamoDBException as exc:
            _raise_transient_or(exc, f"ledger batch get of {len(wanted)} entries")
            raise
        return {(row.doc_id, row.generation): _to_entry(row) for row in rows}

    def begin(self, doc_id: str, generation: str, pending_keys: Sequence[str], source_version: int) -> None:
        if not pending_keys:
            return
        row = self.model(doc_id, generation)
        try:
            row.update(
                actions=[self.model.pending_keys.add(set(pending_keys))],
                condition=self._not_newer(source_version),
            )
        except UpdateError as exc:
            if _is_condition_failure(exc):
                raise VersionConflictError(
                    f"ledger for {doc_id} in {generation} already holds a version newer than {source_version}"
                ) from exc
            _raise_transient_or(exc, f"ledger begin {doc_id}")

    def commit(self, entry: LedgerEntry) -> None:
        row = self.model(entry.doc_id, entry.generation)
        actions: builtins.list[Any] = [
            self.model.source_version.set(entry.source_version),
            self.model.chunk_keys.set(list(entry.chunk_keys)),  # type: ignore[arg-type]
            self.model.attrs_hash.set(entry.attrs_hash),
            self.model.state.set(entry.state),
            self.model.indexed_at.set(entry.indexed_at or time.time()),
        ]
        if entry.source_updated_at is not None:
            actions.append(self.model.source_updated_at.set(entry.source_updated_at))
        if entry.pending_keys:
            # Only this run's pending keys: a concurrent run's stay until it commits or a later
            # reconcile deletes them as obsolete.
            actions.append(self.model.pending_keys.delete(set(entry.pending_keys)))
        try:
            if entry.state == "deleted":
                condition = self.model.source_version.does_not_exist() | (
                    self.model.source_version <= entry.source_version
                )
            else:
                condition = self._not_newer(entry.source_version)
            row.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if _is_condition_failure(exc):
                raise VersionConflictError(
                    f"ledger for {entry.doc_id} in {entry.generation} holds a version newer than "
                    f"{entry.source_version}"
                ) from exc
            _raise_transient_or(exc, f"ledger commit {entry.doc_id}")

    def release(self, doc_id: str, generation: str, keys: Sequence[str]) -> None:
        """Forget pending keys that were cleaned up after a lost race."""
        if keys:
            self.model(doc_id, generation).update(actions=[self.model.pending_keys.delete(set(keys))])

    def scan(self, generation: str) -> Iterator[LedgerEntry]:
        for row in self.model.scan(self.model.generation == generation):
            yield _to_entry(row)

    def delete_generation(self, generation: str) -> int:
        removed = 0
        with self.model.batch_write() as batch:
            for row in self.model.scan(self.model.generation == generation):
                batch.delete(row)
                removed += 1
        return removed


def _to_entry(row: LedgerModel) -> LedgerEntry:
    return LedgerEntry(
        doc_id=row.doc_id,
        generation=row.generation,
        source_version=int(row.source_version if row.source_version is not None else -1),
        chunk_keys=[str(k) for k in (row.chunk_keys or [])],
        pending_keys=sorted(row.pending_keys or []),
        attrs_hash=row.attrs_hash or "",
        state=row.state or "committed",
        source_updated_at=row.source_updated_at,
        indexed_at=row.indexed_at,
    )


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


class DynamoRegistry:
    """The generation registry on DynamoDB (a handful of items; scans are cheap)."""

    def __init__(self, table_name: str) -> None:
        self.model: type[RegistryModel] = bind(RegistryModel, table_name)  # type: ignore[assignment]

    def get(self, generation_id: str) -> Generation:
        try:
            return _to_generation(self.model.get(generation_id, consistent_read=True))
        except DoesNotExist as exc:
            known = ", ".join(g.id for g in self.list()) or "none"
            raise UnknownGenerationError(f"unknown generation {generation_id!r} (known: {known})") from exc

    def list(self) -> list[Generation]:
        return sorted(
            (_to_generation(r) for r in self.model.scan(consistent_read=True)), key=lambda g: g.created_at
        )

    def _row(self, generation: Generation) -> RegistryModel:
        return self.model(
            generation.id,
            index_name=generation.index_name,
            model=generation.model.model_dump_json(),
            chunker=generation.chunker.model_dump_json(),
            schema_version=generation.schema_version,
            status=generation.status.value,
            write_target=generation.write_target,
            created_at=generation.created_at,
            updated_at=time.time(),
            report=json.dumps(generation.report) if generation.report is not None else None,
            backfill=json.dumps(generation.backfill),
            canary=json.dumps(generation.canary) if generation.canary is not None else None,
        )

    def put(self, generation: Generation) -> None:
        self._row(generation).save()

    def create(self, generation: Generation) -> None:
        """Register a new generation; an existing id is left alone (idempotent on retries)."""
        try:
            self._row(generation).save(condition=self.model.generation_id.does_not_exist())
        except PutError as exc:
            if not _is_condition_failure(exc):
                raise

    def update(self, generation_id: str, **changes: Any) -> Generation:
        row = self.model(generation_id)
        actions: builtins.list[Any] = [self.model.updated_at.set(time.time())]
        for name, value in changes.items():
            if name == "status":
                actions.append(self.model.status.set(GenerationStatus(value).value))
            elif name == "write_target":
                actions.append(self.model.write_target.set(bool(value)))
            elif name == "report":
                actions.append(self.model.report.set(json.dumps(value)))
            elif name == "backfill":
                actions.append(self.model.backfill.set(json.dumps(value)))
            elif name == "canary":
                actions.append(self.model.canary.set(json.dumps(value)))
            else:
                raise ValueError(f"registry field {name!r} cannot be updated")
        try:
            row.update(actions=actions, condition=self.model.generation_id.exists())
        except UpdateError as exc:
            if _is_condition_failure(exc):
                raise UnknownGenerationError(f"unknown generation {generation_id!r}") from exc
            raise
        return _to_generation(row)

    def write_targets(self) -> builtins.list[Generation]:
        return [g for g in self.list() if g.write_target]

    def active(self) -> Generation | None:
        return next((g for g in self.list() if g.status is GenerationStatus.ACTIVE), None)


def _to_generation(row: RegistryModel) -> Generation:
    return Generation(
        id=row.generation_id,
        index_name=row.index_name,
        model=ModelSpec.model_validate_json(row.model),
        chunker=ChunkerSpec.model_validate_json(row.chunker),
        schema_version=int(row.schema_version or 1),
        status=GenerationStatus(row.status),
        write_target=bool(row.write_target),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
        report=json.loads(row.report) if row.report else None,
        backfill=json.loads(row.backfill) if row.backfill else {},
        canary=json.loads(row.canary) if row.canary else None,
    )


# ---------------------------------------------------------------------------------------------
# Embedding cache
# ---------------------------------------------------------------------------------------------


class DynamoEmbeddingCache:
    """Vectors stored as float32 bytes: 1.5 KB for 384-d, well under the 400 KB item limit."""

    def __init__(self, table_name: str) -> None:
        self.model: type[EmbeddingCacheModel] = bind(EmbeddingCacheModel, table_name)  # type: ignore[assignment]

    @staticmethod
    def _key(model_id: str, content_hash: str) -> str:
        return f"{model_id}#{content_hash}"

    def get_many(self, model_id: str, content_hashes: Sequence[str]) -> dict[str, list[float]]:
        wanted = {self._key(model_id, h): h for h in dict.fromkeys(content_hashes)}
        found: dict[str, list[float]] = {}
        if not wanted:
            return found
        for row in self.model.batch_get(list(wanted)):
            found[wanted[row.cache_key]] = np.frombuffer(row.vector, dtype=np.float32).astype(float).tolist()
        return found

    def put_many(self, model_id: str, vectors: Mapping[str, Sequence[float]]) -> None:
        now = time.time()
        with self.model.batch_write() as batch:
            for content_hash, vector in vectors.items():
                batch.save(
                    self.model(
                        self._key(model_id, content_hash),
                        vector=np.asarray(vector, dtype=np.float32).tobytes(),
                        created_at=now,
                    )
                )


# ---------------------------------------------------------------------------------------------
# Held jobs (batched update policy)
# ---------------------------------------------------------------------------------------------


class DynamoHeldJobs:
    """Coalesces batched-policy jobs per doc: ten edits of one doc become one reconcile."""

    def __init__(self, table_name: str) -> None:
        self.model: type[HeldJobModel] = bind(HeldJobModel, table_name)  # type: ignore[assignment]

    def hold(self, job: ReconcileJob, max_delay_s: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        m = self.model
        row = m(job.doc_id)
        # First edit sets the clock; later edits only raise the version and keep the job newest.
        row.update(
            actions=[
                m.first_held_at.set(m.first_held_at | now),
                m.due_at.set(m.due_at | now + max_delay_s),
                m.source_updated_at.set(m.source_updated_at | (job.source_updated_at or now)),
                m.min_source_version.set(job.min_source_version),
                m.job.set(job.model_dump_json()),
                m.edits.add(1),
            ]
        )

    def due(self, now: float | None = None, flush_all: bool = False) -> list[tuple[ReconcileJob, int]]:
        now = time.time() if now is None else now
        rows = list(self.model.scan(consistent_read=True))
        out = []
        for row in rows:
            if flush_all or row.due_at <= now:
                job = ReconcileJob.model_validate_json(row.job)
                job.source_updated_at = row.source_updated_at
                out.append((job, int(row.edits or 1)))
        return out

    def count(self) -> int:
        return sum(1 for _ in self.model.scan(attributes_to_get=["doc_id"]))

    def release(self, job: ReconcileJob) -> bool:
        """Remove a drained job unless a newer edit arrived meanwhile (that one stays held)."""
        try:
            self.model(job.doc_id).delete(condition=self.model.min_source_version <= job.min_source_version)
            return True
        except PynamoDBException as exc:
            if _is_condition_failure(exc):
                return False
            raise


# ---------------------------------------------------------------------------------------------
# Source table
# ---------------------------------------------------------------------------------------------


class DynamoSourceReader:
    """Reads the operator's source table; the key attribute comes from the source schema."""

    def __init__(self, table_name: str, id_attribute: str, resource: Any | None = None) -> None:
        self.table = (resource or boto3.resource("dynamodb", region_name=_region())).Table(table_name)
        self.id_attribute = id_attribute

    def get_item(self, doc_id: str) -> dict[str, Any] | None:
        try:
            response = self.table.get_item(Key={self.id_attribute: doc_id}, ConsistentRead=True)
        except ClientError as exc:
            _raise_client(exc, f"source get {doc_id}")
        item: dict[str, Any] | None = response.get("Item")
        return item

    def get_items(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """BatchGetItem (consistent) in pages of 100, retrying unprocessed keys."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(doc_ids))
        for start in range(0, len(wanted), 100):
            keys = [{self.id_attribute: d} for d in wanted[start : start + 100]]
            for attempt in range(8):
                try:
                    response = self.table.meta.client.batch_get_item(
                        RequestItems={self.table.name: {"Keys": keys, "ConsistentRead": True}}
                    )
                except ClientError as exc:
                    _raise_client(exc, f"source batch get of {len(keys)} docs")
                for item in response.get("Responses", {}).get(self.table.name, []):
                    found[str(item[self.id_attribute])] = item
                keys = response.get("UnprocessedKeys", {}).get(self.table.name, {}).get("Keys", [])
                if not keys:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            if keys:
                raise TransientError(f"source batch get left {len(keys)} keys unprocessed")
        return found

    def scan_segment(
        self, segment: int, total_segments: int, start_key: dict[str, Any] | None, limit: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        kwargs: dict[str, Any] = {
            "Segment": segment,
            "TotalSegments": total_segments,
            "Limit": limit,
            "ConsistentRead": True,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        try:
            response = self.table.scan(**kwargs)
        except ClientError as exc:
            _raise_client(exc, f"source scan segment {segment}")
        return response.get("Items", []), response.get("LastEvaluatedKey")

    def iter_all(self, page_size: int = 500) -> Iterator[dict[str, Any]]:
        start: dict[str, Any] | None = None
        while True:
            items, start = self.scan_segment(0, 1, start, page_size)
            yield from items
            if not start:
                return


class DynamoSentinelWriter:
    """Writes the end-to-end sentinel's own items to the source table, and nothing else: an id
    outside the sentinel prefix is refused here as IAM refuses it in AWS (``dynamodb:LeadingKeys``)."""

    def __init__(self, table_name: str, id_attribute: str, resource: Any | None = None) -> None:
        self.table = (resource or boto3.resource("dynamodb", region_name=_region())).Table(table_name)
        self.id_attribute = id_attribute

    def put_item(self, item: Mapping[str, Any]) -> None:
        doc_id = str(item.get(self.id_attribute, ""))
        _only_sentinel(doc_id)
        try:
            self.table.put_item(Item=dict(item))
        except ClientError as exc:
            _raise_client(exc, f"sentinel put {doc_id}")

    def delete_item(self, doc_id: str) -> None:
        _only_sentinel(doc_id)
        try:
            self.table.delete_item(Key={self.id_attribute: doc_id})
        except ClientError as exc:
            _raise_client(exc, f"sentinel delete {doc_id}")


def _only_sentinel(doc_id: str) -> None:
    if not is_sentinel(doc_id):
        raise ValueError(f"the sentinel writer writes sentinel items only, not {doc_id!r}")


def _raise_client(exc: ClientError, what: str) -> None:
    code = exc.response.get("Error", {}).get("Code", "")
    if code in _THROTTLING:
        raise TransientError(f"{what}: {code}") from exc
    raise exc


def plain_key(key: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """LastEvaluatedKey → JSON-safe (Decimal → int/str) for Step Functions state."""
    if key is None:
        return None
    return {
        k: (int(v) if isinstance(v, Decimal) and v == v.to_integral_value() else v) for k, v in key.items()
    }


# Bindings are keyed by endpoint, so a new local stack needs no reset; kept for callers that clear.
bind.cache_clear = _bind.cache_clear  # type: ignore[attr-defined]
