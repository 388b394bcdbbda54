"""One test per row of the decision table in docs/classification.md, then the raw-record edge."""

from __future__ import annotations

import copy
import re
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
def test_modify_to_older_version_reapplies_access_from_the_current_item() -> None:
    # GIVEN the source going back: v5 readable by alice and bob, then v4 by alice only
    old = item(version=Decimal(5), acl={"user:alice", "user:bob"})
    new = item(version=Decimal(4), acl={"user:alice"}, body="A different body.")
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN content is not applied (the index cannot go back), but access is re-applied from the
    # current source item: bob loses the doc (fail closed)
    assert (decision.kind, decision.actions) == (ACCESS, (ACCESS,))
    assert decision.reason.startswith("older version 4 < 5: the source went back")
    assert decision.changed == ("acl", "body")
    assert decision.source_version == 4


def test_modify_to_older_version_reapplies_access_even_when_the_images_agree_on_it() -> None:
    # GIVEN an older version whose ACL equals the newer one's (the index's may not: fail closed)
    old = item(version=Decimal(5))
    new = item(version=Decimal(4), body="Restored body.")
    # WHEN / THEN access is re-applied from the current item all the same: it costs no embedding
    assert classify_change(old, new, SCHEMA, "MODIFY").actions == (ACCESS,)


def test_modify_to_older_tombstoned_version_is_delete() -> None:
    # GIVEN the source going back to an archived version
    old = item(version=Decimal(5))
    new = item(version=Decimal(4), status="archived")
    # WHEN / THEN it is a delete (the applier decides it from the current item)
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    assert (decision.kind, decision.actions) == (DELETE, (DELETE,))
    assert decision.reason.startswith("older version 4 < 5")


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
    # THEN it is an older version (compared as epoch milliseconds): access only, from the current item
    assert decision.kind is ACCESS
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
        ("two", "must be an integer number (N), not a string (S) 'two'"),
        (True, "must be an integer number (N), not a boolean (BOOL)"),
        (Decimal("1.5"), "must be a whole number, not 1.5"),
        (Decimal("1E+30"), "is 1E+30, above 2305843009213693951"),
        (Decimal(-1), "is negative"),
    ],
)
def test_invalid_version_raises_malformed_naming_doc(version: Any, message: str) -> None:
    # GIVEN a new image with a missing or unusable version
    new = item(version=version)
    # WHEN / THEN classification fails naming the doc and the problem
    with pytest.raises(MalformedRecordError, match=re.escape(message)) as caught:
        classify_change(None, new, SCHEMA, "INSERT")
    assert caught.value.doc_id == "doc-1"
    assert str(caught.value).startswith("doc 'doc-1': new image:")


@pytest.mark.parametrize(
    ("breakage", "named"),
    [
        pytest.param({"version": None}, "missing version attribute 'version'", id="no version"),
        pytest.param({"version": "abc"}, "version attribute 'version'", id="version abc"),
        pytest.param({"version": Decimal("1E+30")}, "above 2305843009213693951", id="version 1e30"),
        pytest.param({"acl": {"user:alice": True}}, "access attribute 'acl'", id="acl map"),
        pytest.param({"tenant": {"name": "acme"}}, "tenant attribute 'tenant'", id="tenant map"),
        pytest.param({"doc_id": None}, "missing id attribute", id="no id"),
    ],
)
def test_malformed_old_image_is_decided_from_the_new_image(breakage: dict[str, Any], named: str) -> None:
    # GIVEN a well-formed new image whose old image is malformed (a bad write before this one)
    old = item(**{"version": Decimal(2), "acl": {"user:alice", "user:bob"}, **breakage})
    new = item(version=Decimal(3), acl={"user:alice"})
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    # THEN it is never rejected: access is re-applied from the current item at once, then the
    # doc is reconciled in full (nothing is diffed against the unreadable image)
    assert (decision.kind, decision.actions) == (CONTENT, (ACCESS, CONTENT))
    assert (decision.doc_id, decision.source_version) == ("doc-1", 3)
    assert decision.reason.startswith("old image unreadable")
    assert named in decision.reason


def test_malformed_old_image_with_tombstoned_new_image_is_delete() -> None:
    old = item(version="abc")
    new = item(version=Decimal(3), status="archived")
    decision = classify_change(old, new, SCHEMA, "MODIFY")
    assert (decision.kind, decision.actions) == (DELETE, (DELETE,))


def test_remove_with_malformed_old_image_deletes_by_the_records_key() -> None:
    # GIVEN a REMOVE whose old image has no version (the last write forgot it)
    old = item(version=None)
    # WHEN it is classified with the id the record's Keys give
    decision = classify_change(old, None, SCHEMA, "REMOVE", doc_id="doc-1")
    # THEN it is a delete of the doc by id, at no particular version (every chunk goes)
    assert (decision.kind, decision.actions) == (DELETE, (DELETE,))
    assert (decision.doc_id, decision.source_version) == ("doc-1", None)
    assert "old image unreadable" in decision.reason and "version" in decision.reason


def test_remove_with_malformed_old_image_and_no_key_raises() -> None:
    # GIVEN an old image with neither a readable id nor a key to fall back on
    old = item(doc_id=None, version="abc")
    # WHEN / THEN there is no doc to delete: malformed, naming the attribute
    with pytest.raises(MalformedRecordError, match="missing id attribute"):
        classify_change(old, None, SCHEMA, "REMOVE")


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


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            {"acl": Decimal(5)},
            "access attribute 'acl' must be a string set (SS), a list of strings (L) or a string (S), not a number (N)",
        ),
        (
            {"acl": {"user:alice": True}},
            "access attribute 'acl' must be a string set (SS), a list of strings (L) or a string (S), not a map (M)",
        ),
        ({"acl": {Decimal(1)}}, "not a number set (NS)"),
        ({"tenant": {"name": "acme"}}, "tenant attribute 'tenant' must be a string (S), not a map (M)"),
        ({"body": Decimal(3)}, "content attribute 'body' must be a string (S), not a number (N)"),
        ({"category": {"a": "b"}}, "metadata attribute 'category' must be a string, number, boolean or null"),
    ],
)
def test_new_image_of_wrong_type_raises_malformed(breakage: dict[str, Any], message: str) -> None:
    # GIVEN a new image with an attribute of a type its role refuses (a security boundary is
    # never guessed: a map's keys are not principals, a number set is not a tenant)
    # WHEN / THEN classification fails naming the doc and the attribute; the applier then
    # fails closed from the current source item
    with pytest.raises(MalformedRecordError) as caught:
        classify_change(item(), bump(item(), **breakage), SCHEMA, "MODIFY")
    assert message in str(caught.value)
    assert caught.value.doc_id == "doc-1"


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
        ("doc-bad-2", "version attribute 'version' must be an integer number (N), not a string (S) 'two'"),
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


# ---- sample events of the fail-closed rules --------------------------------------------------------
def test_sample_version_back_reapplies_access() -> None:
    # GIVEN v5 readable by alice and bob followed by v4 readable by alice only
    record = only_record("dynamodb_stream_version_back")
    # WHEN / THEN the narrower ACL is applied from the current item, not skipped
    decision = classify_record(record, SAMPLE_SCHEMA)
    assert (decision.kind, decision.actions, decision.source_version) == (ACCESS, (ACCESS,), 4)


def test_sample_malformed_write_between_two_good_ones() -> None:
    # GIVEN v2 [alice, bob], then a write with version "abc" [alice], then v3 [alice]
    first, bad, fixed = load_event("dynamodb_stream_malformed_between")["Records"]
    # THEN the first is an access change, the bad one is malformed naming the doc, and the fix
    # is decided from its own (new) image, never rejected because of its old one
    assert classify_record(first, SAMPLE_SCHEMA).actions == (ACCESS,)
    with pytest.raises(MalformedRecordError, match="'doc-0004': new image: version attribute 'version'"):
        classify_record(bad, SAMPLE_SCHEMA)
    decision = classify_record(fixed, SAMPLE_SCHEMA)
    assert (decision.actions, decision.source_version) == ((ACCESS, CONTENT), 3)


def test_sample_unversioned_write_then_remove_deletes_by_key() -> None:
    # GIVEN a write without a version, then delete-item
    unversioned, remove = load_event("dynamodb_stream_remove_unversioned")["Records"]
    with pytest.raises(MalformedRecordError, match="missing version attribute"):
        classify_record(unversioned, SAMPLE_SCHEMA)
    # WHEN the REMOVE (whose old image has no version) is classified
    decision = classify_record(remove, SAMPLE_SCHEMA)
    # THEN the doc is deleted by the id in the record's Keys, timed by the record
    assert (decision.kind, decision.doc_id, decision.source_version) == (DELETE, "doc-0005", None)
    assert decision.source_updated_at == remove["dynamodb"]["ApproximateCreationDateTime"]


@pytest.mark.parametrize(
    ("doc_id", "message"),
    [
        (
            "doc-0006",
            "access attribute 'acl' must be a string set (SS), a list of strings (L) or a string (S), not a map (M)",
        ),
        (
            "doc-0007",
            "access attribute 'acl' must be a string set (SS), a list of strings (L) or a string (S), not a number (N)",
        ),
        ("doc-0008", "not a number set (NS)"),
        ("doc-0009", "tenant attribute 'tenant' must be a string (S), not a map (M)"),
        ("doc-0010", "version attribute 'version' is 1E+30, above 2305843009213693951"),
        ("doc-0011", "content attribute 'body' must be a string (S), not a number (N)"),
        ("doc-0012", "metadata attribute 'category' must be a string, number, boolean or null"),
        ("doc_id=13", "id attribute 'doc_id' must be a string (S), not a number (N)"),
    ],
)
def test_sample_wrong_types_are_malformed_naming_doc_and_attribute(doc_id: str, message: str) -> None:
    records = {
        r["dynamodb"]["Keys"]["doc_id"].get("S", "doc_id=13"): r
        for r in load_event("dynamodb_stream_wrong_types")["Records"]
    }
    with pytest.raises(MalformedRecordError) as caught:
        classify_record(records[doc_id], SAMPLE_SCHEMA)
    assert caught.value.doc_id == doc_id
    assert message in str(caught.value)
    assert "Decimal(" not in str(caught.value) and "{'" not in str(caught.value)


def test_item_without_updated_at_is_timed_by_the_stream_record() -> None:
    # GIVEN an INSERT whose item carries no updated_at (the README's own example has none)
    record = only_record("dynamodb_stream_insert_no_updated_at")
    # WHEN it is classified
    decision = classify_record(record, SAMPLE_SCHEMA)
    # THEN the change is timed by the record's ApproximateCreationDateTime, so freshness and
    # access lag are measured for it too
    assert decision.source_updated_at == record["dynamodb"]["ApproximateCreationDateTime"]


def test_updated_at_wins_over_the_record_time_when_present() -> None:
    record = only_record("dynamodb_stream_modify_access")
    decision = classify_record(record, SAMPLE_SCHEMA)
    assert decision.source_updated_at == 1795249800.0  # 2026-11-21T08:30:00Z, the item's own time
