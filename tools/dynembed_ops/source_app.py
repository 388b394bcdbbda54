"""The source-app simulator: what an application writing to the source table does. Used by the
CLI (`load`, `put`, `delete`), the demo and the benchmarks. Every write bumps the version."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dynembed.core.errors import ConfigError
from dynembed.core.schema import SourceSchema

if TYPE_CHECKING:
    from dynembed.wiring import Services


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line is a clear error naming it."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        handle = opener(path, "rt", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(value, dict):
                raise ConfigError(f"{path}:{number}: expected a JSON object")
            yield number, value


@dataclass
class SourceApp:
    """Writes documents the way a source application would, through the real DynamoDB API."""

    table: Any  # boto3 dynamodb Table
    schema: SourceSchema

    def next_version(self, doc_id: str) -> int:
        """Current + 1; a new (or re-created) doc starts at the clock in ms, so versions keep
        rising across deletes, as dynembed requires."""
        item = self.table.get_item(Key={self.schema.id_attribute: doc_id}, ConsistentRead=True).get("Item")
        return int(item[self.schema.version_attribute]) + 1 if item else int(time.time() * 1000)

    def put(
        self, doc: Mapping[str, Any], version: int | None = None, now: float | None = None
    ) -> dict[str, Any]:
        doc_id = str(doc.get(self.schema.id_attribute) or "")
        if not doc_id:
            raise ConfigError(f"document has no {self.schema.id_attribute!r}")
        item = {k: _dynamo_value(v) for k, v in doc.items() if v is not None}
        item[self.schema.id_attribute] = doc_id
        item[self.schema.version_attribute] = (
            version if version is not None else self.next_version(doc_id) - 1 + 1
        )
        if self.schema.updated_at_attribute:
            item[self.schema.updated_at_attribute] = Decimal(
                str(round(now if now is not None else time.time(), 3))
            )
        self.table.put_item(Item=item)
        return item

    def update(self, doc_id: str, changes: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
        item = self.table.get_item(Key={self.schema.id_attribute: doc_id}, ConsistentRead=True).get("Item")
        if item is None:
            raise ConfigError(f"no document {doc_id!r} in the source table")
        merged = {**item, **changes}
        merged.pop(self.schema.version_attribute, None)
        return self.put(merged, now=now)

    def delete(self, doc_id: str) -> None:
        self.table.delete_item(Key={self.schema.id_attribute: doc_id})

    def load(self, path: str | Path, defaults: Mapping[str, Any] | None = None) -> int:
        """Load a JSONL corpus (one document per line); validates every line before writing."""
        docs = []
        for number, doc in read_jsonl(path):
            if not doc.get(self.schema.id_attribute):
                raise ConfigError(f"{path}:{number}: missing {self.schema.id_attribute!r}")
            docs.append({**(defaults or {}), **doc})
        with self.table.batch_writer() as batch:
            now = time.time()
            for doc in docs:
                item = {k: _dynamo_value(v) for k, v in doc.items() if v is not None}
                item[self.schema.version_attribute] = int(doc.get(self.schema.version_attribute) or 1)
                if self.schema.updated_at_attribute:
                    item[self.schema.updated_at_attribute] = Decimal(str(round(now, 3)))
                batch.put_item(Item=item)
        return len(docs)


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, list):
        return [_dynamo_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _dynamo_value(v) for k, v in value.items()}
    return value


def source_app_for(svc: Services) -> SourceApp:
    """The source-app simulator, writing to ``svc``'s source table (as an application would,
    with its own client: the source port only reads)."""
    import boto3

    table = boto3.resource("dynamodb", region_name=svc.settings.region).Table(svc.settings.source_table)
    return SourceApp(table, svc.schema)
