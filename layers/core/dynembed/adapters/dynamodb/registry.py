"""The generation registry on DynamoDB (a handful of items; scans are cheap), and the backfill
progress kept on each generation's item."""

from __future__ import annotations

import builtins
import json
import random
import time
from typing import Any

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, PutError, UpdateError
from pynamodb.models import Model

from dynembed.adapters.dynamodb.tables import bind, is_condition_failure
from dynembed.core.errors import TransientError, UnknownGenerationError
from dynembed.core.models import (
    ChunkerSpec,
    Generation,
    GenerationStatus,
    ModelSpec,
    QuantizerState,
    RetrievalSpec,
    ScoreThreshold,
    VectorSpec,
)
from dynembed.rebuild.progress import BackfillProgress, Mutation


class RegistryModel(Model):
    """One generation: model, chunker, status, write-target flag, evaluation report."""

    class Meta:
        table_name = "dynembed-registry"

    generation_id = UnicodeAttribute(hash_key=True)
    index_name = UnicodeAttribute()
    model = UnicodeAttribute()  # ModelSpec JSON
    chunker = UnicodeAttribute()  # ChunkerSpec JSON
    retrieval = UnicodeAttribute(null=True)  # RetrievalSpec JSON
    vectors = UnicodeAttribute(null=True)  # VectorSpec JSON
    quantizer = UnicodeAttribute(null=True)  # QuantizerState JSON
    threshold = UnicodeAttribute(null=True)  # ScoreThreshold JSON
    schema_version = NumberAttribute(default=1)
    status = UnicodeAttribute()
    write_target = BooleanAttribute(default=False)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    report = UnicodeAttribute(null=True)  # JSON
    backfill = UnicodeAttribute(null=True)  # JSON: per-segment progress
    canary = UnicodeAttribute(null=True)  # JSON: the latest canary report


class DynamoRegistry:
    def __init__(self, table_name: str, *, region: str, host: str | None = None) -> None:
        self.model = bind(RegistryModel, table_name, region, host)

    def get(self, generation_id: str) -> Generation:
        try:
            return _to_generation(self.model.get(generation_id, consistent_read=True))
        except DoesNotExist as exc:
            known = ", ".join(g.id for g in self.list()) or "none"
            raise UnknownGenerationError(f"unknown generation {generation_id!r} (known: {known})") from exc

    def list(self) -> builtins.list[Generation]:
        return sorted(
            (_to_generation(r) for r in self.model.scan(consistent_read=True)), key=lambda g: g.created_at
        )

    def _row(self, generation: Generation) -> RegistryModel:
        return self.model(
            generation.id,
            index_name=generation.index_name,
            model=generation.model.model_dump_json(),
            chunker=generation.chunker.model_dump_json(),
            retrieval=generation.retrieval.model_dump_json(),
            vectors=generation.vectors.model_dump_json(),
            quantizer=generation.quantizer.model_dump_json() if generation.quantizer else None,
            threshold=generation.threshold.model_dump_json() if generation.threshold else None,
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
        try:
            self._row(generation).save(condition=self.model.generation_id.does_not_exist())
        except PutError as exc:
            if not is_condition_failure(exc):
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
            elif name in ("quantizer", "threshold"):
                attribute = getattr(self.model, name)
                actions.append(attribute.remove() if value is None else attribute.set(_json_of(value)))
            elif name == "canary":
                actions.append(self.model.canary.set(json.dumps(value)))
            else:
                raise ValueError(f"registry field {name!r} cannot be updated")
        try:
            row.update(actions=actions, condition=self.model.generation_id.exists())
        except UpdateError as exc:
            if is_condition_failure(exc):
                raise UnknownGenerationError(f"unknown generation {generation_id!r}") from exc
            raise
        return _to_generation(row)


def _json_of(value: Any) -> str:
    return value.model_dump_json() if hasattr(value, "model_dump_json") else json.dumps(value)


def _to_generation(row: RegistryModel) -> Generation:
    return Generation(
        id=row.generation_id,
        index_name=row.index_name,
        model=ModelSpec.model_validate_json(row.model),
        chunker=ChunkerSpec.model_validate_json(row.chunker),
        retrieval=RetrievalSpec.model_validate_json(row.retrieval) if row.retrieval else RetrievalSpec(),
        vectors=VectorSpec.model_validate_json(row.vectors) if row.vectors else VectorSpec(),
        quantizer=QuantizerState.model_validate_json(row.quantizer) if row.quantizer else None,
        threshold=ScoreThreshold.model_validate_json(row.threshold) if row.threshold else None,
        schema_version=int(row.schema_version or 1),
        status=GenerationStatus(row.status),
        write_target=bool(row.write_target),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
        report=json.loads(row.report) if row.report else None,
        backfill=json.loads(row.backfill) if row.backfill else {},
        canary=json.loads(row.canary) if row.canary else None,
    )


class DynamoProgressStore:
    """Compare-and-set on the registry item's ``backfill`` attribute (the JSON string the
    registry stores), so parallel segments never overwrite each other's pages."""

    def __init__(
        self, table_name: str, *, region: str, host: str | None = None, max_attempts: int = 25
    ) -> None:
        self.model = bind(RegistryModel, table_name, region, host)
        self.max_attempts = max_attempts

    def _read(self, generation_id: str) -> str | None:
        try:
            row = self.model.get(
                generation_id, consistent_read=True, attributes_to_get=["generation_id", "backfill"]
            )
        except DoesNotExist as exc:
            raise UnknownGenerationError(f"unknown generation {generation_id!r}") from exc
        return row.backfill

    def load(self, generation_id: str) -> BackfillProgress | None:
        raw = self._read(generation_id)
        return BackfillProgress.from_record(json.loads(raw)) if raw else None

    def change(self, generation_id: str, mutate: Mutation) -> BackfillProgress:
        m = self.model
        for attempt in range(self.max_attempts):
            old = self._read(generation_id)
            progress = mutate(BackfillProgress.from_record(json.loads(old)) if old else None)
            unchanged = m.backfill.does_not_exist() if old is None else m.backfill == old
            try:
                m(generation_id).update(
                    actions=[m.backfill.set(json.dumps(progress.record())), m.updated_at.set(time.time())],
                    condition=m.generation_id.exists() & unchanged,
                )
                return progress
            except UpdateError as exc:
                if not is_condition_failure(exc):
                    raise
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise TransientError(
            f"backfill progress of {generation_id}: {self.max_attempts} conflicting writes in a row"
        )
