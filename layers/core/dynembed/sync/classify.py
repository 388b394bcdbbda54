"""Turn one source change into the cheapest correct action on the index (DESIGN.md, flow 1).

``classify_change`` is pure: two decoded images in, one ``Decision`` out, so every rule of the
decision table (docs/classification.md) is a plain unit test. ``classify_record`` is the edge:
it decodes one Lambda DynamoDB Streams record with Powertools' deserializer (the one its
``DynamoDBRecord`` data class uses) and delegates.

What the pipeline *reads* of an item is its index-visible view: content texts, metadata values,
source type, the ACL as a set of principals, the tenant, and whether the item is tombstoned.
A change to anything else (counters, ``updated_at``, the version alone) costs nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.shared.dynamodb_deserializer import TypeDeserializer
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from dynembed.core.errors import MalformedRecordError
from dynembed.core.models import ChangeKind, Decision
from dynembed.core.schema import SourceSchema, describe, timestamp_to_epoch_ms

INSERT = "INSERT"
MODIFY = "MODIFY"
REMOVE = "REMOVE"
EVENT_NAMES = (INSERT, MODIFY, REMOVE)

ACTION_ORDER = (ChangeKind.ACCESS, ChangeKind.METADATA, ChangeKind.CONTENT)
"""Order of application: revocations first (I3), then cheap patches, then embedding work."""
_COST = {ChangeKind.METADATA: 1, ChangeKind.ACCESS: 2, ChangeKind.CONTENT: 3}
"""``Decision.kind`` is the most expensive action: content > access > metadata."""


class _Deserializer(TypeDeserializer):
    """Powertools' deserializer, except that binary (B, BS) arrives base64-encoded in Lambda's
    JSON and is decoded to bytes, so a binary attribute is never mistaken for a string."""

    def _deserialize_b(self, value: Any) -> bytes:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else bytes(value)


_DESERIALIZER = _Deserializer()
_TTL_PRINCIPAL = "dynamodb.amazonaws.com"


# ---- the pure part -------------------------------------------------------------------------------
def classify_change(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    schema: SourceSchema,
    event_name: str | None = None,
    *,
    doc_id: str | None = None,
) -> Decision:
    """Decide what one change of one source item costs.

    ``event_name`` is the stream's INSERT/MODIFY/REMOVE; when None it is inferred from which
    images are present. ``doc_id`` is the id the record's Keys give: a REMOVE whose old image is
    unreadable is still a delete of that doc. Raises ``MalformedRecordError`` (naming the
    attribute and, when known, the doc) when the image the decision rests on is malformed (the
    new one; the old one for REMOVE without a key), for a missing image or an unknown event.
    A malformed *old* image of a MODIFY never rejects a well-formed new one.
    """
    old_item = None if old is None else dict(old)
    new_item = None if new is None else dict(new)
    event = _event_name(event_name, old_item, new_item)
    _require_images(event, old_item, new_item, doc_id=doc_id)

    if event == REMOVE:
        assert old_item is not None
        return _removed(old_item, schema, doc_id)

    assert new_item is not None
    doc_id = _valid(new_item, schema, "new", doc_id)
    version = schema.version_of(new_item, doc_id)

    if event == INSERT:
        return _from_new_image(
            new_item,
            schema,
            doc_id,
            version,
            (ChangeKind.CONTENT,),
            tombstoned="inserted as tombstone: nothing indexed yet, delete is idempotent",
            live="inserted",
        )

    assert old_item is not None
    old_problems = schema.problems(old_item)
    if old_problems:
        # Nothing can be diffed against an unreadable image: decide from the new one alone.
        # The applier re-applies access from the current item at once, then a full reconcile.
        why = f"old image unreadable ({'; '.join(old_problems)}): decided from the new image"
        return _from_new_image(
            new_item,
            schema,
            doc_id,
            version,
            (ChangeKind.ACCESS, ChangeKind.CONTENT),
            tombstoned=f"{why}: tombstoned",
            live=f"{why}: access re-applied from the current item, full reconcile",
        )
    old_id = schema.id_of(old_item)
    if old_id != doc_id:
        raise MalformedRecordError(
            f"id attribute {schema.id_attribute!r} differs between images ({old_id!r} → {doc_id!r})",
            doc_id,
        )
    old_version = schema.version_of(old_item, doc_id)
    changes = _changes_by_action(old_item, new_item, schema, doc_id)
    changed = _changed_names(changes)

    def decide(kind: ChangeKind, actions: tuple[ChangeKind, ...], reason: str) -> Decision:
        return _decision(kind, actions, doc_id, version, changed, reason, basis=new_item, schema=schema)

    if version < old_version:
        # The index cannot go back (external versions), so content stays; but whatever ACL the
        # index holds, what the current item grants is what may be read: fail closed.
        went_back = f"older version {version} < {old_version}: the source went back"
        if _tombstoned(new_item, schema):
            return decide(ChangeKind.DELETE, (ChangeKind.DELETE,), f"{went_back}, tombstoned")
        return decide(
            ChangeKind.ACCESS,
            (ChangeKind.ACCESS,),
            f"{went_back}; content not applied, access re-applied from the current item",
        )
    if not changed:
        ignored = _ignored_changes(old_item, new_item, changed)
        detail = (
            f" (differences the index does not see: {', '.join(ignored)})"
            if ignored
            else " (identical images)"
        )
        return decide(ChangeKind.SKIP, (), "no attribute the pipeline reads changed" + detail)

    was_dead, is_dead = _tombstoned(old_item, schema), _tombstoned(new_item, schema)
    if is_dead:
        why = "still tombstoned: delete again (idempotent)" if was_dead else "tombstoned"
        return decide(ChangeKind.DELETE, (ChangeKind.DELETE,), f"{why} ({_tombstone_text(new_item, schema)})")
    if was_dead:
        return decide(
            ChangeKind.CONTENT,
            (ChangeKind.CONTENT,),
            f"un-tombstoned ({_tombstone_text(new_item, schema)}): full reconcile",
        )

    actions = tuple(kind for kind in ACTION_ORDER if changes[kind])
    kind = max(actions, key=_COST.__getitem__)
    return decide(kind, actions, f"{'+'.join(a.value for a in actions)} changed: {', '.join(changed)}")


def _from_new_image(
    new: dict[str, Any],
    schema: SourceSchema,
    doc_id: str,
    version: int,
    actions: tuple[ChangeKind, ...],
    *,
    tombstoned: str,
    live: str,
) -> Decision:
    """Decided from the new image alone, when there is nothing to diff it against (an insert,
    or an unreadable old image): a tombstone is a delete, anything else content work
    (``actions``). ``tombstoned`` and ``live`` are the reasons for each."""
    changed = _read_changes({}, new, schema, doc_id)
    if _tombstoned(new, schema):
        return _decision(
            ChangeKind.DELETE,
            (ChangeKind.DELETE,),
            doc_id,
            version,
            changed,
            tombstoned,
            basis=new,
            schema=schema,
        )
    return _decision(ChangeKind.CONTENT, actions, doc_id, version, changed, live, basis=new, schema=schema)


def _removed(old: dict[str, Any], schema: SourceSchema, key_id: str | None) -> Decision:
    """REMOVE: a delete at the old image's version; when that image is unreadable, a delete of
    the doc the record's Keys name, at no particular version (the applier removes every chunk)."""
    problems = schema.problems(old)
    if not problems:
        doc_id = schema.id_of(old)
        return _decision(
            ChangeKind.DELETE,
            (ChangeKind.DELETE,),
            doc_id,
            schema.version_of(old, doc_id),
            _read_changes({}, old, schema, doc_id),
            "removed from the source table",
            basis=old,
            schema=schema,
        )
    try:
        doc_id = key_id or schema.id_of(old)
    except MalformedRecordError as exc:
        raise MalformedRecordError(f"old image: {exc.detail}") from exc
    return Decision(
        kind=ChangeKind.DELETE,
        actions=(ChangeKind.DELETE,),
        doc_id=doc_id,
        source_version=None,
        reason=f"removed from the source table; old image unreadable ({'; '.join(problems)}): "
        "deleted by id, whatever version its chunks carry",
        source_updated_at=schema.updated_at_of(old),
    )


def _event_name(event_name: str | None, old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    if event_name is not None:
        return _check_event_name(event_name, doc_id=None)
    if old is None and new is None:
        raise MalformedRecordError("a change needs an old or a new image; both are missing")
    if old is None:
        return INSERT
    return REMOVE if new is None else MODIFY


def _check_event_name(event_name: Any, doc_id: str | None) -> str:
    if event_name is None:
        raise MalformedRecordError("record has no eventName", doc_id)
    if event_name not in EVENT_NAMES:
        raise MalformedRecordError(
            f"unknown eventName {event_name!r} (expected one of {', '.join(EVENT_NAMES)})", doc_id
        )
    return str(event_name)


def _require_images(
    event: str, old: dict[str, Any] | None, new: dict[str, Any] | None, doc_id: str | None, hint: str = ""
) -> None:
    """An image the event type needs must be there; an image it does not use is ignored."""
    missing = [
        label
        for label, image, needed in (
            ("old image", old, event in (MODIFY, REMOVE)),
            ("new image", new, event in (MODIFY, INSERT)),
        )
        if needed and image is None
    ]
    if missing:
        raise MalformedRecordError(f"{event} record has no {' and no '.join(missing)}{hint}", doc_id)


def _valid(item: dict[str, Any], schema: SourceSchema, which: str, key_id: str | None) -> str:
    """The image's doc id; raises naming the image, the doc and every bad attribute."""
    problems = schema.problems(item)
    if problems:
        raise MalformedRecordError(f"{which} image: {'; '.join(problems)}", schema.label_of(item) or key_id)
    return schema.id_of(item)


def _tombstoned(item: dict[str, Any], schema: SourceSchema) -> bool:
    return schema.tombstone is not None and schema.tombstone.is_tombstoned(item)


def _tombstone_text(item: dict[str, Any], schema: SourceSchema) -> str:
    assert schema.tombstone is not None
    attribute = schema.tombstone.attribute
    return f"{attribute}={item.get(attribute)!r}"


def _principals(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset((value,))
    return frozenset(str(v) for v in value)


def _read_changes(
    old: dict[str, Any], new: dict[str, Any], schema: SourceSchema, doc_id: str
) -> tuple[str, ...]:
    return _changed_names(_changes_by_action(old, new, schema, doc_id))


def _changed_names(changes: dict[ChangeKind, set[str]]) -> tuple[str, ...]:
    """``Decision.changed``: the read attributes whose index-visible value differs, sorted."""
    return tuple(sorted({attr for attrs in changes.values() for attr in attrs}))


def _changes_by_action(
    old: dict[str, Any], new: dict[str, Any], schema: SourceSchema, doc_id: str
) -> dict[ChangeKind, set[str]]:
    """Which read attributes changed, grouped by the action their change calls for."""
    changes: dict[ChangeKind, set[str]] = {kind: set() for kind in ACTION_ORDER}

    old_text, new_text = dict(schema.content_of(old)), dict(schema.content_of(new))
    changes[ChangeKind.CONTENT].update(
        attr for attr in schema.content_attributes if old_text.get(attr) != new_text.get(attr)
    )

    old_meta, new_meta = schema.metadata_of(old), schema.metadata_of(new)
    changes[ChangeKind.METADATA].update(
        attr for attr in schema.metadata_attributes if old_meta.get(attr) != new_meta.get(attr)
    )
    if schema.source_type_attribute and schema.source_type_of(old) != schema.source_type_of(new):
        changes[ChangeKind.METADATA].add(schema.source_type_attribute)

    if schema.acl_of(old, doc_id) != schema.acl_of(new, doc_id):
        changes[ChangeKind.ACCESS].update(
            attr
            for attr in schema.access_attributes
            if _principals(old.get(attr)) != _principals(new.get(attr))
        )
    if schema.tenant_attribute and _tenant(old, schema) != _tenant(new, schema):
        changes[ChangeKind.ACCESS].add(schema.tenant_attribute)

    if _tombstoned(old, schema) != _tombstoned(new, schema):
        # The tombstone attribute is read as a flag: draft → published is not a change to us.
        assert schema.tombstone is not None
        changes[ChangeKind.CONTENT].add(schema.tombstone.attribute)
    return changes


def _tenant(image: dict[str, Any], schema: SourceSchema) -> str | None:
    # {} stands for "no image" (an insert, an unreadable old image): no tenant, not a missing one.
    return schema.tenant_of(image) if image else None


def _ignored_changes(old: dict[str, Any], new: dict[str, Any], read: tuple[str, ...]) -> list[str]:
    """Attributes that differ raw but not as the index sees them (for the reason text only):
    unread ones (counters, ``updated_at``) and read ones in an equivalent form (list vs set)."""
    names = set(old) | set(new)
    return sorted(
        name for name in names - set(read) if (name in old) != (name in new) or old.get(name) != new.get(name)
    )


def _decision(
    kind: ChangeKind,
    actions: tuple[ChangeKind, ...],
    doc_id: str,
    version: int,
    changed: tuple[str, ...],
    reason: str,
    *,
    basis: dict[str, Any],
    schema: SourceSchema,
) -> Decision:
    return Decision(
        kind=kind,
        actions=actions,
        doc_id=doc_id,
        source_version=version,
        changed=changed,
        reason=reason,
        source_updated_at=schema.updated_at_of(basis),
        tenant=schema.tenant_of(basis),
        source_type=schema.source_type_of(basis),
    )


# ---- the edge: one raw stream record -------------------------------------------------------------
def classify_record(record: Mapping[str, Any], schema: SourceSchema) -> Decision:
    """Classify one DynamoDB Streams record as Lambda delivers it (typed JSON images).

    Accepts a plain dict or the ``DynamoDBRecord`` a Powertools ``BatchProcessor`` hands over.
    Errors name the doc, taken from ``Keys`` when the image lacks it.
    """
    wrapped = record if isinstance(record, DynamoDBRecord) else DynamoDBRecord(dict(record))
    stream = wrapped.get("dynamodb")
    if not isinstance(stream, Mapping):
        raise MalformedRecordError(
            f"record {wrapped.event_id!r} has no 'dynamodb' body: not a DynamoDB Streams record"
        )
    source = wrapped.event_source
    if source is not None and source != "aws:dynamodb":
        raise MalformedRecordError(f"record {wrapped.event_id!r} comes from {source!r}, not aws:dynamodb")

    keys = _decode_image(stream, "Keys", doc_id=None) or {}
    key_id = _key_id(keys, schema)
    doc_label = key_id or _doc_label(keys)
    old = _decode_image(stream, "OldImage", doc_label)
    new = _decode_image(stream, "NewImage", doc_label)
    if doc_label is None:
        doc_label = schema.label_of(new or old or {})

    event = _check_event_name(wrapped.get("eventName"), doc_label)
    view = stream.get("StreamViewType")
    _require_images(
        event, old, new, doc_label, hint=f" (stream view type {view}; dynembed needs NEW_AND_OLD_IMAGES)"
    )

    try:
        decision = classify_change(old, new, schema, event, doc_id=key_id)
    except MalformedRecordError as exc:
        if exc.doc_id is None and doc_label is not None:
            raise MalformedRecordError(exc.detail, doc_label) from exc
        raise

    # Freshness is timed from the change: the item's updated_at, else the record's own time.
    # For REMOVE always the record's: the old image's updated_at is its last write, not the delete.
    changed_at = _epoch_seconds(stream.get("ApproximateCreationDateTime"))
    update: dict[str, Any] = {}
    if changed_at is not None and (event == REMOVE or decision.source_updated_at is None):
        update["source_updated_at"] = changed_at
    if event == REMOVE and _is_ttl_expiry(wrapped):
        update["reason"] = "expired by TTL: " + decision.reason
    if update:
        decision = decision.model_copy(update=update)
    return decision


def record_doc_id(record: Mapping[str, Any], schema: SourceSchema) -> str | None:
    """The doc a stream record is about, even when the record is malformed: a usable id from
    ``Keys``, else from the old image, else from the new one (None when none is usable)."""
    stream = record.get("dynamodb")
    if not isinstance(stream, Mapping):
        return None
    for key in ("Keys", "OldImage", "NewImage"):
        try:
            image = _decode_image(stream, key, doc_id=None)
        except MalformedRecordError:
            continue
        found = _key_id(image or {}, schema)
        if found is not None:
            return found
    return None


def _decode_image(stream: Mapping[str, Any], key: str, doc_id: str | None) -> dict[str, Any] | None:
    """Typed JSON → Python values (Decimal, set, bytes, …), attribute by attribute so errors name one."""
    raw = stream.get(key)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise MalformedRecordError(f"{key} is not a map of attributes", doc_id)
    decoded: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            decoded[name] = _DESERIALIZER.deserialize(value)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError, ArithmeticError) as exc:
            shown = json.dumps(value, default=str)
            shown = shown if len(shown) <= 80 else shown[:80] + "…"
            raise MalformedRecordError(
                f"{key} attribute {name!r} is not a valid DynamoDB value: {shown}", doc_id
            ) from exc
    return decoded


def _key_id(image: Mapping[str, Any], schema: SourceSchema) -> str | None:
    """The doc id in ``image`` (Keys or an image) when it is a usable one."""
    try:
        return schema.id_of(dict(image))
    except MalformedRecordError:
        return None


def _doc_label(keys: Mapping[str, Any]) -> str | None:
    """A label for error messages when the id attribute is not a usable key: all key values."""
    if keys:
        return ",".join(f"{name}={_plain_text(keys[name])}" for name in sorted(keys))
    return None


def _plain_text(value: Any) -> str:
    return str(value) if isinstance(value, str | int | Decimal) else describe(value)


def _epoch_seconds(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return raw.timestamp()
    try:
        return timestamp_to_epoch_ms(raw) / 1000.0
    except (TypeError, ValueError, ArithmeticError):
        return None


def _is_ttl_expiry(record: DynamoDBRecord) -> bool:
    identity = record.user_identity
    return identity.get("type") == "Service" and identity.get("principalId") == _TTL_PRINCIPAL
