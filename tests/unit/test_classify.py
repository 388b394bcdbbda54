"""One test per row of the decision table in docs/classification.md, then the raw-record edge."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from dynembed.core.errors import MalformedRecordError
from dynembed.core.models import ChangeKind
from dynembed.core.schema import SourceSchema, TombstoneRule, VersionKind
from dynembed.sync.classify import classify_change, classify_record
from tests.events import SAMPLE_SCHEMA, load_event

pytestmark = pytest.mark.unit

SKIP, METADATA, ACCESS, CONTENT, DELETE = (
    ChangeKind.SKIP,
    ChangeKind.METADATA,
    ChangeKind.ACCESS,
    ChangeKind.CONTENT,
    ChangeKind.DELETE,
)

SCHEMA = SourceSchema(
    metadata_attributes=("category",),
    source_type_attribute="source_type",
    tombstone=TombstoneRule(attribute="status", values=("archived", "deleted")),
)


def item(**overrides: Any) -> dict[str, Any]:
    """A decoded source item as TypeDeserializer returns it (Decimal numbers, string sets)."""
    base: dict[str, Any] = {
        "doc_id": "doc-1",
        "version": Decimal(1),
        "updated_at": "2026-11-20T10:00:00Z",
        "title": "Rotating credentials",
        "body": "Credentials rotate every 30 days.",
        "acl": {"group:platform", "user:alice"},
        "tenant": "acme",
        "category": "runbook",
        "source_type": "wiki",
        "status": "published",
        "views": Decimal(0),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def bump(old: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The next version of ``old`` with ``changes`` applied (None removes an attribute)."""
    return item(**{**old, "version": old["version"] + 1, **changes})


# ---- INSERT ------------------------------------------------------------------------------------
def test_insert_of_live_item_is_content() -> None:
    # GIVEN a new item that is not tombstoned
    new = item()
    # WHEN it is classified as an INSERT
    decision = classify_change(None, new, SCHEMA, "INSERT")
    # THEN the whole doc is reconciled, at the new version, with the new image's attributes
    assert (decision.kind, decision.actions) == (CONTENT, (CONTENT,))
    assert decision.source_version == 1
    assert decision.doc_id == "doc-1"
    assert decision.changed == ("acl", "body", "category", "source_type", "tenant", "title")
    assert (decision.tenant, decision.source_type) == ("acme", "wiki")
    assert decision.source_updated_at == 1795168800.0


def test_insert_of_tombstone_is_delete() -> None:
    # GIVEN an item that is born archived
    new = item(status="archived")
    # WHEN it is classified as an INSERT
    decision = classify_change(None, new, SCHEMA, "INSERT")
    # THEN it is a delete (nothing to remove yet, but the delete is idempotent and embeds nothing)
    assert (decision.kind, decision.actions) == (DELETE, (DELETE,))
    assert decision.reason.startswith("inserted as tombstone")


# ---- REMOVE ------------------------------------------------------------------------------------
def test_remove_is_delete_at_old_version() -> None:
    # GIVEN the last image of a deleted item, at version 7, in tenant globex
    old = item(version=Decimal(7), tenant="globex")
    # WHEN it is classified as a REMOVE
    decision = classify_change(old, None, SCHEMA, "REMOVE")
    # THEN it is a delete at the old image's version, described by the old image
    assert (decision.kind, decision.actions) == (DELETE, (DELETE,))
    assert decision.source_version == 7
    assert decision.tenant == "globex"
    assert decision.reason == "removed from the source table"


def test_remove_of_tombstoned_item_is_still_delete() -> None:
    # GIVEN an archived item that is now removed from the table
    old = item(version=Decimal(3), status="archived")
    # WHEN it is classified as a REMOVE
    decision = classify_change(old, None, SCHEMA, "REMOVE")
    # THEN it is a delete again: idempotent, cheap, repairs a delete that was lost
    assert decision.kind is DELETE


# ---- MODIFY that costs nothing -----------------------------------------------------------------
def test_modify_to_older_version_is_skipped() -> None:
    # GIVEN a new image whose version is lower than the old one, with a different body
    old = item(version=Decimal(5))
    new = item(version=Decimal(4), body="A different body.")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN nothing is applied, and the reason says why
    assert (decision.kind, decision.actions) == (SKIP, ())
    assert decision.reason.startswith("older version 4 < 5")
    assert decision.changed == ("body",)


def test_modify_with_identical_images_is_skipped() -> None:
    # GIVEN an identical put (moto emits MODIFY for it: FACTS.md)
    old = item()
    # WHEN it is classified
    decision = classify_change(old, dict(old), SCHEMA, "MODIFY")
    # THEN it is skipped
    assert (decision.kind, decision.actions, decision.changed) == (SKIP, (), ())
    assert decision.reason == "no attribute the pipeline reads changed (identical images)"


def test_modify_of_unread_attributes_only_is_skipped() -> None:
    # GIVEN a write that bumps the version, updated_at and a views counter only
    old = item()
    new = bump(old, updated_at="2026-11-20T11:00:00Z", views=Decimal(41))
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN it is skipped, and the reason names what changed that nobody reads
    assert (decision.kind, decision.changed) == (SKIP, ())
    assert decision.reason == (
        "no attribute the pipeline reads changed"
        " (differences the index does not see: updated_at, version, views)"
    )
    assert decision.source_version == 2


def test_modify_that_only_reorders_acl_is_skipped() -> None:
    # GIVEN an ACL written once as a string set, then as a list in another order
    old = item(acl={"user:alice", "group:platform"})
    new = bump(old, acl=["user:alice", "group:platform"])
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN the ACL compares as a set: no change
    assert decision.kind is SKIP


def test_modify_from_missing_to_blank_content_is_skipped() -> None:
    # GIVEN a body that goes from absent to whitespace only (neither yields any text to chunk)
    old = item(body=None)
    new = bump(old, body="   ")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN nothing the chunker would see changed
    assert decision.kind is SKIP


def test_modify_of_tombstone_attribute_between_live_values_is_skipped() -> None:
    # GIVEN status going from draft to published: neither is a tombstone value
    old = item(status="draft")
    new = bump(old, status="published")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN the tombstone attribute is read as a flag only, and the flag did not move
    assert (decision.kind, decision.changed) == (SKIP, ())
    assert "status" in decision.reason


# ---- MODIFY and tombstones ---------------------------------------------------------------------
def test_modify_to_tombstone_is_delete() -> None:
    # GIVEN a live item that is archived
    old = item()
    new = bump(old, status="archived", updated_at="2026-11-21T00:00:00Z")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN the doc is deleted at the archiving version, timed by the archiving write
    assert (decision.kind, decision.actions) == (DELETE, (DELETE,))
    assert decision.source_version == 2
    assert decision.changed == ("status",)
    assert decision.source_updated_at == 1795219200.0
    assert decision.reason == "tombstoned (status='archived')"


def test_modify_of_tombstoned_item_deletes_again() -> None:
    # GIVEN an archived item whose body is edited while it stays archived
    old = item(status="archived")
    new = bump(old, status="deleted", body="Edited while archived.")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN it stays out of the index: delete again (idempotent), never a content job
    assert (decision.kind, decision.actions) == (DELETE, (DELETE,))
    assert decision.reason.startswith("still tombstoned")


def test_untombstoning_is_full_content_reconcile() -> None:
    # GIVEN an archived item that is restored, with nothing else changed
    old = item(status="archived")
    new = bump(old, status="published")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN the whole doc is reconciled (its chunks were deleted when it was archived)
    assert (decision.kind, decision.actions) == (CONTENT, (CONTENT,))
    assert decision.changed == ("status",)
    assert decision.reason.startswith("un-tombstoned")


# ---- MODIFY: one kind of change ----------------------------------------------------------------
def test_metadata_change_is_metadata() -> None:
    # GIVEN only the category changes
    old = item()
    new = bump(old, category="how-to")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN the chunks are patched, nothing is embedded
    assert (decision.kind, decision.actions, decision.changed) == (METADATA, (METADATA,), ("category",))


def test_source_type_change_is_metadata() -> None:
    # GIVEN only the source type changes
    old = item()
    new = bump(old, source_type="ticket")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN it is a metadata patch, and the decision carries the new source type
    assert (decision.kind, decision.changed) == (METADATA, ("source_type",))
    assert decision.source_type == "ticket"


def test_acl_change_is_access() -> None:
    # GIVEN alice loses access
    old = item()
    new = bump(old, acl={"group:platform"})
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN the ACL is patched at once, nothing is embedded
    assert (decision.kind, decision.actions, decision.changed) == (ACCESS, (ACCESS,), ("acl",))


def test_tenant_change_is_access() -> None:
    # GIVEN the doc moves to another tenant (a security boundary)
    old = item()
    new = bump(old, tenant="globex")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN it is an access change, carrying the new tenant
    assert (decision.kind, decision.actions, decision.changed) == (ACCESS, (ACCESS,), ("tenant",))
    assert decision.tenant == "globex"


def test_content_change_is_content() -> None:
    # GIVEN the body changes
    old = item()
    new = bump(old, body="Credentials rotate every 7 days.")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN a reconcile job follows
    assert (decision.kind, decision.actions, decision.changed) == (CONTENT, (CONTENT,), ("body",))


# ---- MODIFY: combinations ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "kind", "actions"),
    [
        pytest.param(
            {"acl": {"group:platform"}, "title": "New"}, CONTENT, (ACCESS, CONTENT), id="access+content"
        ),
        pytest.param(
            {"tenant": "globex", "category": "faq"}, ACCESS, (ACCESS, METADATA), id="access+metadata"
        ),
        pytest.param(
            {"category": "faq", "body": "New body."}, CONTENT, (METADATA, CONTENT), id="metadata+content"
        ),
        pytest.param(
            {"acl": {"public"}, "category": "faq", "body": "New body."},
            CONTENT,
            (ACCESS, METADATA, CONTENT),
            id="all three",
        ),
    ],
)
def test_combined_changes_apply_access_first_and_report_the_costliest(
    changes: dict[str, Any], kind: ChangeKind, actions: tuple[ChangeKind, ...]
) -> None:
    # GIVEN several kinds of attribute change in one write
    old = item()
    new = bump(old, **changes)
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN actions run access → metadata → content, and kind is the most expensive of them
    assert (decision.kind, decision.actions) == (kind, actions)
    assert decision.changed == tuple(sorted(changes))


def test_equal_version_with_changes_is_processed() -> None:
    # GIVEN a source app that changed the body but forgot to bump the version
    old = item(version=Decimal(3))
    new = item(version=Decimal(3), body="Changed without a version bump.")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN it is treated as a normal change: reconcile reads the source anyway
    assert (decision.kind, decision.source_version) == (CONTENT, 3)


def test_event_name_is_inferred_from_images_when_not_given() -> None:
    # GIVEN images only
    old, new = item(), bump(item(), category="faq")
    # WHEN classified without an event name
    # THEN the images say which event it was
    assert classify_change(None, new, SCHEMA).kind is CONTENT
    assert classify_change(old, None, SCHEMA).kind is DELETE
    assert classify_change(old, new, SCHEMA).kind is METADATA


def test_timestamp_versions_are_compared_in_time() -> None:
    # GIVEN a schema whose version is an ISO timestamp, and a write that goes back in time
    schema = SCHEMA.model_copy(update={"version_kind": VersionKind.TIMESTAMP})
    old = item(version="2026-11-20T10:00:00Z")
    new = item(version="2026-11-20T09:59:59Z", body="Older edit delivered late.")
    # WHEN it is classified
    decision = classify_change(old, new, schema, "MODIFY")
    # THEN it is an older version (compared as epoch milliseconds)
    assert decision.kind is SKIP
    assert decision.source_version == 1795168799000


# ---- malformed input ---------------------------------------------------------------------------
@pytest.mark.parametrize("event", ["INSERT", "MODIFY"])
def test_missing_id_raises_malformed(event: str) -> None:
    # GIVEN a new image without the id attribute
    new = item(doc_id=None)
    old = item() if event == "MODIFY" else None
    # WHEN / THEN classification fails naming the attribute
    with pytest.raises(MalformedRecordError, match="new image: missing id attribute 'doc_id'"):
        classify_change(old, new, SCHEMA, event)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (None, "missing version attribute 'version'"),
        ("two", "is not a valid number: 'two'"),
        (True, "is not a valid number"),
        (Decimal("1.5"), "is not a valid number"),
        (Decimal(-1), "is negative"),
    ],
)
def test_invalid_version_raises_malformed_naming_doc(version: Any, message: str) -> None:
    # GIVEN a new image with a missing or unusable version
    new = item(version=version)
    # WHEN / THEN classification fails naming the doc and the problem
    with pytest.raises(MalformedRecordError, match=message) as caught:
        classify_change(None, new, SCHEMA, "INSERT")
    assert caught.value.doc_id == "doc-1"
    assert str(caught.value).startswith("doc 'doc-1': new image:")


def test_invalid_old_version_on_modify_raises_malformed() -> None:
    # GIVEN a MODIFY whose old image has no version
    with pytest.raises(MalformedRecordError, match="old image: missing version") as caught:
        classify_change(item(version=None), item(), SCHEMA, "MODIFY")
    # THEN the doc is named
    assert caught.value.doc_id == "doc-1"


@pytest.mark.parametrize(
    ("event", "old", "new", "missing"),
    [
        ("INSERT", item(), None, "no new image"),
        ("REMOVE", None, item(), "no old image"),
        ("MODIFY", None, item(), "no old image"),
        ("MODIFY", item(), None, "no new image"),
        ("MODIFY", None, None, "no old image and no new image"),
        (None, None, None, "both are missing"),
    ],
)
def test_missing_image_for_event_raises_malformed(
    event: str | None, old: dict[str, Any] | None, new: dict[str, Any] | None, missing: str
) -> None:
    # GIVEN an event without the image(s) it needs
    # WHEN / THEN classification fails saying which image is missing
    with pytest.raises(MalformedRecordError, match=missing):
        classify_change(old, new, SCHEMA, event)


def test_unknown_event_name_raises_malformed() -> None:
    with pytest.raises(MalformedRecordError, match="unknown eventName 'UPSERT'"):
        classify_change(None, item(), SCHEMA, "UPSERT")


def test_id_that_changes_between_images_raises_malformed() -> None:
    # GIVEN an id attribute that is not the table key and was rewritten
    with pytest.raises(MalformedRecordError, match="differs between images"):
        classify_change(item(doc_id="doc-1"), item(doc_id="doc-2"), SCHEMA, "MODIFY")


def test_acl_of_wrong_type_raises_malformed() -> None:
    # GIVEN an ACL stored as a number: a security boundary we refuse to guess about
    with pytest.raises(MalformedRecordError, match="access attribute 'acl' must be a string, list or set"):
        classify_change(item(), bump(item(), acl=Decimal(5)), SCHEMA, "MODIFY")


# ---- classify_record: sample events ------------------------------------------------------------
def only_record(name: str) -> dict[str, Any]:
    records: list[dict[str, Any]] = load_event(name)["Records"]
    assert len(records) == 1
    return records[0]


@pytest.mark.parametrize(
    ("event", "kind", "actions", "version", "changed"),
    [
        ("dynamodb_stream_insert", CONTENT, (CONTENT,), 1, ("acl", "body", "category", "tenant", "title")),
        ("dynamodb_stream_modify_content", CONTENT, (CONTENT,), 2, ("body",)),
        ("dynamodb_stream_modify_access", ACCESS, (ACCESS,), 3, ("acl",)),
        ("dynamodb_stream_modify_metadata", METADATA, (METADATA,), 4, ("category",)),
        ("dynamodb_stream_archive", DELETE, (DELETE,), 5, ("status",)),
    ],
)
def test_sample_events_classify_as_documented(
    event: str, kind: ChangeKind, actions: tuple[ChangeKind, ...], version: int, changed: tuple[str, ...]
) -> None:
    # GIVEN a sample stream record as Lambda delivers it
    record = only_record(event)
    # WHEN it is classified
    decision = classify_record(record, SAMPLE_SCHEMA)
    # THEN it yields the decision the docs promise for it
    assert (decision.kind, decision.actions, decision.source_version, decision.changed) == (
        kind,
        actions,
        version,
        changed,
    )
    assert (decision.doc_id, decision.tenant) == ("doc-0001", "acme")


def test_sample_remove_events_delete_at_old_version_timed_by_the_record() -> None:
    # GIVEN a user delete and a TTL expiry
    user_delete, ttl_expiry = load_event("dynamodb_stream_remove")["Records"]
    # WHEN they are classified
    first, second = classify_record(user_delete, SAMPLE_SCHEMA), classify_record(ttl_expiry, SAMPLE_SCHEMA)
    # THEN both are deletes at the old image's version, timed when the item left the table
    assert (first.kind, first.doc_id, first.source_version) == (DELETE, "doc-0001", 5)
    assert first.source_updated_at == user_delete["dynamodb"]["ApproximateCreationDateTime"]
    assert first.reason == "removed from the source table"
    assert (second.kind, second.doc_id, second.source_version) == (DELETE, "doc-0002", 9)
    assert second.reason.startswith("expired by TTL")


def test_record_decodes_string_sets_and_numbers_before_classifying() -> None:
    # GIVEN the access sample with its ACL string set rewritten as a list in reverse order
    record = copy.deepcopy(only_record("dynamodb_stream_modify_access"))
    image = record["dynamodb"]["NewImage"]
    image["acl"] = {"L": [{"S": p} for p in reversed(record["dynamodb"]["OldImage"]["acl"]["SS"])]}
    # WHEN it is classified
    decision = classify_record(record, SAMPLE_SCHEMA)
    # THEN the ACL is unchanged as a set and only the version moved: skip
    assert decision.kind is SKIP
    assert decision.source_version == 3


def test_record_accepts_the_powertools_data_class() -> None:
    # GIVEN the record as a Powertools BatchProcessor hands it to a record handler
    record = DynamoDBRecord(only_record("dynamodb_stream_modify_metadata"))
    # WHEN / THEN it classifies the same as the plain dict
    assert classify_record(record, SAMPLE_SCHEMA).kind is METADATA


@pytest.mark.parametrize(
    ("doc_id", "message"),
    [
        ("doc-bad-1", "new image: missing version attribute 'version'"),
        ("doc-bad-2", "version attribute 'version' is not a valid number: 'two'"),
        ("doc-bad-3", "MODIFY record has no old image (stream view type NEW_IMAGE"),
        ("doc-bad-4", "unknown eventName 'UPSERT'"),
        ("doc-bad-5", "new image: missing id attribute 'doc_id'"),
        ("doc-bad-6", "NewImage attribute 'views' is not a valid DynamoDB value"),
    ],
)
def test_malformed_sample_records_raise_naming_the_doc(doc_id: str, message: str) -> None:
    # GIVEN one record of the malformed sample event
    records = {
        r["dynamodb"]["Keys"]["doc_id"]["S"]: r for r in load_event("dynamodb_stream_malformed")["Records"]
    }
    # WHEN it is classified
    with pytest.raises(MalformedRecordError) as caught:
        classify_record(records[doc_id], SAMPLE_SCHEMA)
    # THEN the error names the doc (from Keys when the image lacks it) and the problem
    assert caught.value.doc_id == doc_id
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"doc {doc_id!r}: ")


def test_record_without_dynamodb_body_raises_malformed() -> None:
    # GIVEN an SQS message routed to the stream handler by mistake
    record = {"eventSource": "aws:sqs", "messageId": "m-1", "body": "{}"}
    # WHEN / THEN it is refused, not a KeyError
    with pytest.raises(MalformedRecordError, match="no 'dynamodb' body"):
        classify_record(record, SAMPLE_SCHEMA)


def test_record_without_event_name_raises_malformed() -> None:
    record = copy.deepcopy(only_record("dynamodb_stream_insert"))
    del record["eventName"]
    with pytest.raises(MalformedRecordError, match="no eventName") as caught:
        classify_record(record, SAMPLE_SCHEMA)
    assert caught.value.doc_id == "doc-0001"


def test_record_with_composite_keys_names_them_when_no_id_is_known() -> None:
    # GIVEN a table keyed by pk/sk, a schema whose id attribute is in neither Keys nor image
    record = copy.deepcopy(only_record("dynamodb_stream_insert"))
    record["dynamodb"]["Keys"] = {"pk": {"S": "acme"}, "sk": {"S": "doc#1"}}
    del record["dynamodb"]["NewImage"]["doc_id"]
    # WHEN / THEN the error names the record by its keys
    with pytest.raises(MalformedRecordError, match="missing id attribute") as caught:
        classify_record(record, SAMPLE_SCHEMA)
    assert caught.value.doc_id == "pk=acme,sk=doc#1"
