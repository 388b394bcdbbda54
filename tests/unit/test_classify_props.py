"""Property-based tests: classify_change against a separately written oracle, and the invariants
of DESIGN.md it must keep (I3 access before content, I5 no embedding for metadata/access).

Images are drawn from small value pools so that "unchanged" and "changed" both happen often;
the new image of a MODIFY is the old one with some attributes redrawn and the ACL re-represented
(set ↔ shuffled list ↔ single string).
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynembed.core.errors import MalformedRecordError
from dynembed.core.models import ChangeKind, Decision
from dynembed.core.schema import SourceSchema, TombstoneRule
from dynembed.sync.classify import classify_change, classify_record

pytestmark = pytest.mark.unit

SKIP, METADATA, ACCESS, CONTENT, DELETE = (
    ChangeKind.SKIP,
    ChangeKind.METADATA,
    ChangeKind.ACCESS,
    ChangeKind.CONTENT,
    ChangeKind.DELETE,
)

SCHEMA = SourceSchema(
    content_attributes=("title", "body"),
    metadata_attributes=("category", "labels"),
    access_attributes=("acl", "owners"),
    tenant_attribute="tenant",
    source_type_attribute="source_type",
    tombstone=TombstoneRule(attribute="status", values=("archived", "deleted")),
)
READ_ATTRIBUTES = {"title", "body", "category", "labels", "acl", "owners", "tenant", "source_type", "status"}
DEAD_STATUSES = {"archived", "deleted"}

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ORACLE = settings(PROPS, max_examples=600)
"""The oracle comparison is the property that matters most: it gets the most examples."""


# ---- the oracle: written from the decision table, not from classify.py --------------------------
def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, Decimal):
        return int(value)
    return value


def _principals(item: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for attr in ("acl", "owners"):
        value = item.get(attr)
        if isinstance(value, str):
            found.add(value)
        elif value is not None:
            found.update(value)
    return found


def _dead(item: dict[str, Any]) -> bool:
    return item.get("status") in DEAD_STATUSES


def _view(item: dict[str, Any]) -> dict[str, Any]:
    """Everything the index holds about an item, in comparable form."""
    return {
        "content": (_text(item.get("title")), _text(item.get("body"))),
        "metadata": (_plain(item.get("category")), _plain(item.get("labels")), item.get("source_type")),
        "access": (frozenset(_principals(item)), item.get("tenant")),
        "dead": _dead(item),
    }


def oracle(
    old: dict[str, Any] | None, new: dict[str, Any] | None, event: str
) -> tuple[ChangeKind, tuple[ChangeKind, ...]]:
    if event == "REMOVE":
        return DELETE, (DELETE,)
    assert new is not None
    if event == "INSERT":
        return (DELETE, (DELETE,)) if _dead(new) else (CONTENT, (CONTENT,))
    assert old is not None
    if int(new["version"]) < int(old["version"]):
        # The source went back: content cannot follow, access is re-applied from the current item.
        return (DELETE, (DELETE,)) if _dead(new) else (ACCESS, (ACCESS,))
    before, after = _view(old), _view(new)
    if before == after:
        return SKIP, ()
    if after["dead"]:
        return DELETE, (DELETE,)
    if before["dead"]:
        return CONTENT, (CONTENT,)
    actions: list[ChangeKind] = []
    if before["access"] != after["access"]:
        actions.append(ACCESS)
    if before["metadata"] != after["metadata"]:
        actions.append(METADATA)
    if before["content"] != after["content"]:
        actions.append(CONTENT)
    kind = CONTENT if CONTENT in actions else ACCESS if ACCESS in actions else METADATA
    return kind, tuple(actions)


# ---- strategies -----------------------------------------------------------------------------------
PRINCIPALS = ["public", "group:eng", "group:ops", "user:alice", "user:bob"]
texts = st.one_of(st.none(), st.sampled_from(["", "  ", "Alpha", "Alpha ", "Beta", "Gamma\n\nDelta"]))
principal_sets = st.frozensets(st.sampled_from(PRINCIPALS), max_size=4)
metadata_values = st.one_of(
    st.none(),
    st.sampled_from(["faq", "runbook"]),
    st.integers(0, 2).map(Decimal),
    st.integers(0, 2),
    st.lists(st.sampled_from(["x", "y"]), max_size=2),
    st.frozensets(st.sampled_from(["x", "y"]), min_size=1).map(set),
)


@st.composite
def acl_values(draw: st.DrawFn, principals: frozenset[str] | None = None) -> Any:
    """One principal set, represented as DynamoDB might decode it: set, list in any order, str."""
    chosen = draw(principal_sets) if principals is None else principals
    if not chosen:
        return draw(st.sampled_from([None, []]))
    shapes = ["set", "list"] + (["str"] if len(chosen) == 1 else [])
    shape = draw(st.sampled_from(shapes))
    if shape == "set":
        return set(chosen)
    if shape == "str":
        return next(iter(chosen))
    return draw(st.permutations(sorted(chosen)))


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "title": texts,
    "body": texts,
    "category": metadata_values,
    "labels": metadata_values,
    "acl": acl_values(),
    "owners": acl_values(),
    "tenant": st.one_of(st.none(), st.sampled_from(["acme", "globex"])),
    "source_type": st.one_of(st.none(), st.sampled_from(["wiki", "ticket"])),
    "status": st.one_of(st.none(), st.sampled_from(["published", "draft", "archived", "deleted"])),
    "views": st.one_of(st.none(), st.integers(0, 3).map(Decimal)),
    "notes": st.one_of(st.none(), st.sampled_from(["n1", "n2"])),
    "updated_at": st.one_of(
        st.none(), st.sampled_from(["2026-11-20T10:00:00Z", "2026-11-21T10:00:00+00:00", Decimal(1795168800)])
    ),
}


@st.composite
def images(draw: st.DrawFn, doc_id: str = "doc-1") -> dict[str, Any]:
    item: dict[str, Any] = {"doc_id": doc_id, "version": Decimal(draw(st.integers(0, 6)))}
    for name, strategy in FIELDS.items():
        value = draw(strategy)
        if value is not None:
            item[name] = value
    return item


@st.composite
def successors(draw: st.DrawFn, old: dict[str, Any]) -> dict[str, Any]:
    """The next image: some attributes redrawn, ACLs re-represented, the version moved -2..+2."""
    new: dict[str, Any] = {"doc_id": old["doc_id"]}
    new["version"] = Decimal(max(0, int(old["version"]) + draw(st.integers(-2, 2))))
    redrawn = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=7))
    for name, strategy in FIELDS.items():
        if name in redrawn:
            value = draw(strategy)
        elif name in ("acl", "owners"):
            value = draw(acl_values(frozenset(_principals({name: old.get(name)}))))
        else:
            value = copy.deepcopy(old.get(name))
        if value is not None:
            new[name] = value
    return new


@st.composite
def changes(draw: st.DrawFn) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str, str | None]:
    """(old, new, event, event_name as passed): event_name is None half the time (inferred)."""
    event = draw(st.sampled_from(["INSERT", "MODIFY", "MODIFY", "MODIFY", "REMOVE"]))
    before = draw(images())
    after = draw(successors(before))
    old = None if event == "INSERT" else before
    new = None if event == "REMOVE" else after
    passed = event if draw(st.booleans()) else None
    return old, new, event, passed


# ---- properties -----------------------------------------------------------------------------------
@ORACLE
@given(changes())
def test_classify_agrees_with_the_oracle(change: tuple[Any, Any, str, str | None]) -> None:
    # GIVEN any well-formed change
    old, new, event, passed = change
    # WHEN it is classified
    decision = classify_change(old, new, SCHEMA, passed)
    # THEN kind and actions are what the independently written table says
    assert (decision.kind, decision.actions) == oracle(old, new, event)


@PROPS
@given(changes())
def test_decision_is_internally_consistent(change: tuple[Any, Any, str, str | None]) -> None:
    old, new, _event, passed = change
    decision = classify_change(old, new, SCHEMA, passed)
    # THEN actions are () for skip, (delete,) for delete, else ordered access → metadata → content (I3)
    if decision.kind is SKIP:
        assert decision.actions == ()
    elif decision.kind is DELETE:
        assert decision.actions == (DELETE,)
    else:
        order = [ACCESS, METADATA, CONTENT]
        assert decision.actions
        assert list(decision.actions) == sorted(decision.actions, key=order.index)
        assert len(set(decision.actions)) == len(decision.actions)
        cost = {METADATA: 1, ACCESS: 2, CONTENT: 3}
        assert decision.kind is max(decision.actions, key=cost.__getitem__)
    # AND changed is sorted, unique, and names only attributes the pipeline reads
    assert list(decision.changed) == sorted(set(decision.changed))
    assert set(decision.changed) <= READ_ATTRIBUTES


@PROPS
@given(changes())
def test_modify_is_skipped_iff_nothing_read_changed(
    change: tuple[Any, Any, str, str | None],
) -> None:
    old, new, event, passed = change
    if event != "MODIFY":
        return
    decision = classify_change(old, new, SCHEMA, passed)
    went_back = int(new["version"]) < int(old["version"])
    assert (decision.kind is SKIP) == (not went_back and _view(old) == _view(new))
    # AND a version that goes back always re-applies access (or deletes): never a skip (fail closed)
    if went_back:
        assert decision.actions in ((ACCESS,), (DELETE,))
    if decision.kind is SKIP:
        assert decision.changed == ()


@PROPS
@given(images(), st.booleans())
def test_remove_is_always_delete_at_the_old_version(old: dict[str, Any], pass_name: bool) -> None:
    decision = classify_change(old, None, SCHEMA, "REMOVE" if pass_name else None)
    assert (decision.kind, decision.actions) == (DELETE, (DELETE,))
    assert decision.source_version == int(old["version"])
    assert (decision.tenant, decision.source_type) == (old.get("tenant"), old.get("source_type"))


@PROPS
@given(changes())
def test_no_content_work_when_only_metadata_or_access_changed(
    change: tuple[Any, Any, str, str | None],
) -> None:
    # I5: content and tombstone state unchanged → no content action, whatever else changed
    old, new, event, passed = change
    if event != "MODIFY":
        return
    before, after = _view(old), _view(new)
    decision = classify_change(old, new, SCHEMA, passed)
    if before["content"] == after["content"] and before["dead"] == after["dead"]:
        assert CONTENT not in decision.actions


@PROPS
@given(changes(), st.data())
def test_acl_representation_never_changes_the_decision(
    change: tuple[Any, Any, str, str | None], data: st.DataObject
) -> None:
    # GIVEN the same change with each ACL re-represented (set ↔ shuffled list ↔ string)
    old, new, _event, passed = change

    def rerepresent(item: dict[str, Any] | None) -> dict[str, Any] | None:
        if item is None:
            return None
        copy_ = dict(item)
        for attr in ("acl", "owners"):
            value = data.draw(acl_values(frozenset(_principals({attr: item.get(attr)}))))
            copy_.pop(attr, None)
            if value is not None:
                copy_[attr] = value
        return copy_

    # THEN the decision is the same (the free-text reason may mention the raw difference)
    def essence(decision: Decision) -> tuple[Any, ...]:
        return decision.kind, decision.actions, decision.changed, decision.source_version

    assert essence(classify_change(rerepresent(old), rerepresent(new), SCHEMA, passed)) == essence(
        classify_change(old, new, SCHEMA, passed)
    )


@PROPS
@given(changes())
def test_classify_is_pure(change: tuple[Any, Any, str, str | None]) -> None:
    old, new, _event, passed = change
    snapshot = copy.deepcopy((old, new))
    first = classify_change(old, new, SCHEMA, passed)
    assert (old, new) == snapshot
    assert classify_change(old, new, SCHEMA, passed) == first


@PROPS
@given(changes())
def test_decision_describes_the_new_image_or_the_old_one_for_removes(
    change: tuple[Any, Any, str, str | None],
) -> None:
    old, new, event, passed = change
    decision = classify_change(old, new, SCHEMA, passed)
    basis = old if event == "REMOVE" else new
    assert basis is not None
    assert decision.doc_id == "doc-1"
    assert decision.source_version == int(basis["version"])
    assert (decision.tenant, decision.source_type) == (basis.get("tenant"), basis.get("source_type"))
    assert decision.source_updated_at == SCHEMA.updated_at_of(basis)


BREAKAGES = st.sampled_from(
    [
        ("doc_id", None),
        ("doc_id", ""),
        ("doc_id", Decimal(1)),
        ("version", None),
        ("version", "v2"),
        ("version", True),
        ("version", Decimal("2.5")),
        ("version", Decimal(-3)),
        ("version", Decimal("1E+30")),
        ("version", ["1"]),
        ("version", {"n": 1}),
        ("acl", {"user:alice": True}),
        ("acl", Decimal(5)),
        ("acl", {Decimal(1), Decimal(2)}),
        ("owners", ["user:alice", Decimal(1)]),
        ("tenant", {"name": "acme"}),
        ("tenant", Decimal(3)),
        ("body", Decimal(4)),
        ("category", {"a": "b"}),
        ("labels", ["x", Decimal(1)]),
        ("source_type", {"wiki"}),
    ]
)


def _break(image: dict[str, Any], breakage: tuple[str, Any]) -> None:
    attribute, value = breakage
    if value is None:
        image.pop(attribute, None)
    else:
        image[attribute] = value


@PROPS
@given(changes(), BREAKAGES)
def test_a_malformed_image_the_decision_rests_on_always_raises_naming_the_attribute(
    change: tuple[Any, Any, str, str | None], breakage: tuple[str, Any]
) -> None:
    # GIVEN an INSERT or MODIFY whose new image has a missing id/version or a wrongly typed
    # read attribute
    old, new, event, passed = change
    if event == "REMOVE":
        return
    _break(new, breakage)
    # WHEN / THEN it raises MalformedRecordError naming the attribute, never KeyError/TypeError
    with pytest.raises(MalformedRecordError, match=repr(breakage[0])) as caught:
        classify_change(old, new, SCHEMA, passed)
    assert "Decimal(" not in str(caught.value)


@PROPS
@given(changes(), BREAKAGES)
def test_a_malformed_old_image_never_rejects_a_change(
    change: tuple[Any, Any, str, str | None], breakage: tuple[str, Any]
) -> None:
    # GIVEN a MODIFY or REMOVE whose old image is malformed (the write before was bad)
    old, new, event, passed = change
    if event == "INSERT":
        return
    _break(old, breakage)
    # WHEN it is classified with the id the record's Keys give
    decision = classify_change(old, new, SCHEMA, passed, doc_id="doc-1")
    # THEN a REMOVE still deletes the doc, and a MODIFY is decided from the new image alone:
    # access re-applied from the current item, then a full reconcile (or a delete if tombstoned)
    assert decision.doc_id == "doc-1"
    if event == "REMOVE":
        assert (decision.kind, decision.actions, decision.source_version) == (DELETE, (DELETE,), None)
    elif _dead(new):
        assert decision.actions == (DELETE,)
    else:
        assert decision.actions == (ACCESS, CONTENT)
        assert decision.source_version == int(new["version"])


# ---- the record edge: serialized with boto3, decoded by classify_record ---------------------------
_SERIALIZER = TypeSerializer()


def _typed(item: dict[str, Any]) -> dict[str, Any]:
    # DynamoDB has no empty sets; an ACL of no principals is stored as an empty list.
    return {k: _SERIALIZER.serialize([] if v == set() else v) for k, v in item.items()}


@PROPS
@given(changes())
def test_record_classification_matches_the_pure_function(change: tuple[Any, Any, str, str | None]) -> None:
    # GIVEN the change as a Lambda stream record (typed JSON images, serialized by boto3)
    old, new, event, _passed = change
    stream: dict[str, Any] = {"Keys": {"doc_id": {"S": "doc-1"}}, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if old is not None:
        stream["OldImage"] = _typed(old)
    if new is not None:
        stream["NewImage"] = _typed(new)
    record = {"eventName": event, "eventSource": "aws:dynamodb", "dynamodb": stream}
    # WHEN the record is classified
    decision = classify_record(record, SCHEMA)
    # THEN it is the pure function's decision on the same images
    expected: Decision = classify_change(old, new, SCHEMA, event)
    assert decision == expected
