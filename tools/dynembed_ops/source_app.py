"""The source-app simulator: what an application writing to the source table does. Used by the
CLI (`load`, `put`, `delete`), the demo and the benchmarks. Every write bumps the version."""

from __future__ import annotations

import contextlib
import gzip
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeSerializer

from dynembed.core.errors import ConfigError, DynembedError, UnknownDocumentError
from dynembed.core.schema import SourceSchema

if TYPE_CHECKING:
    from dynembed.wiring import Services


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line is a clear error naming it."""
    for number, value, problem in _jsonl_lines(path):
        if problem is not None:
            raise ConfigError(f"{path}:{number}: {problem}")
        assert value is not None
        yield number, value


def _jsonl_lines(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, object, None), or (line number, None, what is wrong) for a bad line."""
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
                yield number, None, f"not valid JSON ({exc.msg})"
                continue
            if not isinstance(value, dict):
                yield number, None, "expected a JSON object"
                continue
            yield number, value, None


@dataclass(frozen=True)
class LineProblem:
    """One bad line of a corpus: where, which doc, which attribute, and why."""

    line: int
    doc_id: str | None
    attribute: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}"
        if self.doc_id is not None:
            where += f", doc {self.doc_id!r}"
        if self.attribute is not None:
            where += f", {self.attribute}"
        return f"{where}: {self.reason}"


SHOWN_PROBLEMS = 20
"""Bad lines printed in the error; every bad line is counted, and ``problems`` keeps up to
``KEPT_PROBLEMS`` of them (``dynembed load --json`` lists those)."""
KEPT_PROBLEMS = 1000


class CorpusError(ConfigError):
    """A corpus with bad lines; nothing of it was written."""

    def __init__(self, path: str | Path, problems: list[LineProblem], bad_lines: int) -> None:
        self.path = str(path)
        self.problems = problems
        self.bad_lines = bad_lines
        lines = [f"{path}: {bad_lines} bad line{'s' if bad_lines != 1 else ''}, nothing written"]
        lines += [f"  {p}" for p in problems[:SHOWN_PROBLEMS]]
        if bad_lines > SHOWN_PROBLEMS:
            lines.append(f"  ... and {bad_lines - SHOWN_PROBLEMS} more (--json lists up to {KEPT_PROBLEMS})")
        super().__init__("\n".join(lines))


_serializer = TypeSerializer()


def check_corpus(
    schema: SourceSchema, path: str | Path, defaults: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every line of a JSONL corpus as the source item it would become, or ``CorpusError``
    listing every bad line. Items are read through the schema's accessors (the rules the
    pipeline applies to a stream image) and DynamoDB's serializer, so nothing that would fail
    later, mid-write or in classify, gets written."""
    return _checked_corpus(schema, path, defaults)[0]


def _checked_corpus(
    schema: SourceSchema, path: str | Path, defaults: Mapping[str, Any] | None = None
) -> tuple[list[dict[str, Any]], set[str]]:
    """``check_corpus``'s items, and the ids of those whose line gave no version (written at 1
    unless the doc is already in the table: ``SourceApp.load`` keeps counting from there)."""
    items: list[dict[str, Any]] = []
    unversioned: set[str] = set()
    problems: list[LineProblem] = []
    bad_lines = 0
    first_line: dict[str, int] = {}
    for number, doc, problem in _jsonl_lines(path):
        if doc is None:
            found = [LineProblem(number, None, None, str(problem))]
        else:
            merged = {**(defaults or {}), **doc}
            item = _item_of(schema, merged)
            doc_id, found = _item_problems(schema, number, item)
            if doc_id is not None and doc_id in first_line:
                duplicate = f"duplicate of line {first_line[doc_id]}"
                found.insert(0, LineProblem(number, doc_id, schema.id_attribute, duplicate))
            elif doc_id is not None:
                first_line[doc_id] = number
                item[schema.id_attribute] = doc_id  # the key as the table stores it: a string
                if merged.get(schema.version_attribute) is None:
                    unversioned.add(doc_id)
            items.append(item)
        if found:
            bad_lines += 1
            problems += found[: max(0, KEPT_PROBLEMS - len(problems))]
    if bad_lines:
        raise CorpusError(path, problems, bad_lines)
    return items, unversioned


def _item_of(schema: SourceSchema, doc: Mapping[str, Any]) -> dict[str, Any]:
    item = {k: _dynamo_value(v) for k, v in doc.items() if v is not None}
    item.setdefault(schema.version_attribute, 1)  # a corpus of first versions may omit it
    return item


def _item_problems(
    schema: SourceSchema, number: int, item: dict[str, Any]
) -> tuple[str | None, list[LineProblem]]:
    """The doc id and what is wrong, through each accessor in turn; a failing accessor that
    reads several attributes is narrowed to the attribute that fails on its own."""
    try:
        doc_id = schema.id_of(item)
    except _BAD_VALUE as exc:
        return None, [LineProblem(number, None, schema.id_attribute, _reason(exc, None))]
    checks: list[tuple[Callable[[dict[str, Any]], Any], tuple[str, ...]]] = [
        (lambda i: schema.version_of(i, doc_id), (schema.version_attribute,)),
        (schema.content_of, schema.content_attributes),
        (schema.acl_of, schema.access_attributes),
        (schema.metadata_of, schema.metadata_attributes),
        (schema.tenant_of, (schema.tenant_attribute,) if schema.tenant_attribute else ()),
        (schema.source_type_of, (schema.source_type_attribute,) if schema.source_type_attribute else ()),
    ]
    problems = []
    for accessor, attributes in checks:
        try:
            accessor(item)
        except _BAD_VALUE as exc:
            culprit = next(
                (a for a in attributes if a in item and _fails(accessor, _only(item, a, attributes))), None
            )
            label = culprit or ", ".join(attributes)
            reason = _reason(exc, doc_id)
            if culprit and not isinstance(exc, DynembedError):  # a bare TypeError says too little
                reason = f"invalid value {repr(item[culprit])[:80]}: {reason}"
            problems.append(LineProblem(number, doc_id, label, reason))
    for attribute, value in item.items():
        try:
            _serializer.serialize(value)
        except (TypeError, ValueError, ArithmeticError) as exc:
            problems.append(LineProblem(number, doc_id, attribute, f"DynamoDB cannot store it: {exc}"))
    return doc_id, problems


_BAD_VALUE = (DynembedError, TypeError, ValueError, ArithmeticError, AttributeError)


def _only(item: dict[str, Any], keep: str, group: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k == keep or k not in group}


def _fails(accessor: Callable[[dict[str, Any]], Any], item: dict[str, Any]) -> bool:
    try:
        accessor(item)
    except _BAD_VALUE:
        return True
    return False


def _reason(exc: Exception, doc_id: str | None) -> str:
    # MalformedRecordError prefixes the doc; the problem names it already.
    text = str(exc) or type(exc).__name__
    return text.removeprefix(f"doc {doc_id!r}: ") if doc_id is not None else text


def document_for(
    schema: SourceSchema,
    doc_id: str,
    *,
    body: str,
    title: str | None = None,
    acl: list[str] | None = None,
    tenant: str | None = None,
) -> dict[str, Any]:
    """A doc with the attributes the schema reads (``dynembed put``): the id, the title in
    the first content attribute and the body in the second (a single content attribute
    takes the body), the ACL in the first access attribute (default: the public principal),
    the tenant in the tenant attribute."""
    doc: dict[str, Any] = {schema.id_attribute: doc_id}
    content = schema.content_attributes
    if len(content) >= 2:
        doc[content[0]] = title or doc_id
        doc[content[1]] = body
    else:
        doc[content[0]] = body
    if schema.access_attributes:
        doc[schema.access_attributes[0]] = list(acl) if acl is not None else [schema.public_principal]
    elif acl is not None:
        raise ConfigError("the source schema has no access attribute to put an ACL in")
    if tenant is not None:
        if not schema.tenant_attribute:
            raise ConfigError("the source schema has no tenant attribute to put a tenant in")
        doc[schema.tenant_attribute] = tenant
    return doc


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
        """Write the doc at the next version; an item the schema would refuse is not written (the
        error names the doc and the attribute)."""
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
        self.schema.validate_item(item, doc_id)
        self.table.put_item(Item=item)
        return item

    def update(self, doc_id: str, changes: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
        item = self.table.get_item(Key={self.schema.id_attribute: doc_id}, ConsistentRead=True).get("Item")
        if item is None:
            raise UnknownDocumentError(f"no doc {doc_id!r} in the source table")
        merged = {**item, **changes}
        merged.pop(self.schema.version_attribute, None)
        return self.put(merged, now=now)

    def delete(self, doc_id: str) -> None:
        """Delete the doc; one that is not there is an error (a typo must not read as success)."""
        from botocore.exceptions import ClientError

        try:
            self.table.delete_item(
                Key={self.schema.id_attribute: doc_id},
                ConditionExpression="attribute_exists(#id)",
                ExpressionAttributeNames={"#id": self.schema.id_attribute},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            raise UnknownDocumentError(f"no doc {doc_id!r} in the source table") from None

    def load(self, path: str | Path, defaults: Mapping[str, Any] | None = None) -> int:
        """Load a JSONL corpus (one document per line). Every line is checked first; with any
        bad line, ``CorpusError`` lists them all and nothing is written."""
        items, unversioned = _checked_corpus(self.schema, path, defaults)
        current = self._versions_of(sorted(unversioned))
        for item in items:
            doc_id = item[self.schema.id_attribute]
            if doc_id in current:  # already in the table: keep counting (a version that went
                item[self.schema.version_attribute] = current[doc_id] + 1  # back would hide it)
        with self.table.batch_writer() as batch:
            now = time.time()
            for item in items:
                if self.schema.updated_at_attribute:
                    item[self.schema.updated_at_attribute] = Decimal(str(round(now, 3)))
                batch.put_item(Item=item)
        return len(items)

    def _versions_of(self, doc_ids: list[str]) -> dict[str, int]:
        """The current version of each of ``doc_ids`` the table holds (100 per request; the
        resource's client takes and gives plain values)."""
        client, id_attr, attr = (
            self.table.meta.client,
            self.schema.id_attribute,
            self.schema.version_attribute,
        )
        found: dict[str, int] = {}
        for start in range(0, len(doc_ids), 100):
            keys = [{id_attr: d} for d in doc_ids[start : start + 100]]
            request: dict[str, Any] = {self.table.name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = client.batch_get_item(RequestItems=request)
                for row in response.get("Responses", {}).get(self.table.name, []):
                    version = row.get(attr)
                    if isinstance(row.get(id_attr), str) and isinstance(version, int | Decimal):
                        with contextlib.suppress(ArithmeticError, ValueError, OverflowError):
                            found[row[id_attr]] = int(version)
                request = response.get("UnprocessedKeys") or {}
        return found


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
