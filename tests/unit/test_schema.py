"""SourceSchema: loading, validation errors that name the field, and reading items."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dynembed.core.errors import ConfigError, MalformedRecordError
from dynembed.core.schema import SourceSchema, TombstoneRule, UpdateMode, VersionKind

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "source_schema.example.yaml"


def test_documented_example_loads() -> None:
    schema = SourceSchema.from_file(EXAMPLE)
    assert schema.content_attributes == ("title", "body")
    assert schema.policy_named(None, "catalog").mode is UpdateMode.BATCHED
    assert schema.policy_named("acme", None).mode is UpdateMode.IMMEDIATE


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"content_attributes": []}, "content_attributes"),
        ({"version_kind": "sometimes"}, "version_kind"),
        ({"colour": "blue"}, "colour"),
        ({"policies": {"gold": {"mode": "batched"}}}, "policies"),
        ({"metadata_attributes": ["title"]}, "title"),
        ({"default_policy": {"max_delay_seconds": 0}}, "default_policy.max_delay_seconds"),
    ],
)
def test_invalid_config_names_the_field(data: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        SourceSchema.from_mapping(data)


def test_env_and_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DYNEMBED_SOURCE_SCHEMA is not valid JSON"):
        SourceSchema.from_json("{nope")
    with pytest.raises(ConfigError, match="cannot read source schema file"):
        SourceSchema.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold an object"):
        SourceSchema.from_file(bad)
    assert SourceSchema.from_json('{"id_attribute": "pk"}').id_attribute == "pk"


def test_versions_numbers_and_timestamps() -> None:
    numbers = SourceSchema()
    assert numbers.version_of({"version": Decimal(7)}) == 7
    with pytest.raises(MalformedRecordError, match=r"'d1'.*must be a whole number, not 7.5"):
        numbers.version_of({"version": Decimal("7.5")}, "d1")
    with pytest.raises(MalformedRecordError, match="missing version attribute"):
        numbers.version_of({}, "d1")
    stamps = SourceSchema(version_kind=VersionKind.TIMESTAMP)
    assert stamps.version_of({"version": "2024-01-01T00:00:00Z"}) == 1_704_067_200_000
    assert stamps.version_of({"version": Decimal(1_704_067_200)}) == 1_704_067_200_000
    with pytest.raises(MalformedRecordError, match="timestamp"):
        stamps.version_of({"version": "2024-01-01T00:00:00"}, "d1")  # no timezone


def test_reading_items() -> None:
    schema = SourceSchema(access_attributes=("groups", "users"), metadata_attributes=("price",))
    item = {"groups": {"b", "a"}, "users": ["u1"], "price": Decimal("9.5"), "title": "T", "body": "  "}
    assert schema.acl_of(item) == ["a", "b", "u1"]
    assert schema.metadata_of(item) == {"price": 9.5}
    assert schema.content_of(item) == [("title", "T")]


# ---- strict attribute types: one rule per role, every caller gets it ------------------------------
STRICT = SourceSchema(
    metadata_attributes=("category", "labels", "price"),
    access_attributes=("acl", "owners"),
    source_type_attribute="source_type",
)


ACL_RULE = "access attribute 'acl' must be a string set (SS), a list of strings (L) or a string (S), not "
META_RULE = (
    "metadata attribute 'category' must be a string, number, boolean or null, or a list or set of them, not "
)


def good_item(**overrides: object) -> dict[str, object]:
    item: dict[str, object] = {
        "doc_id": "d1",
        "version": Decimal(3),
        "title": "T",
        "body": "B",
        "acl": {"alice", "bob"},
        "owners": ["carol"],
        "tenant": "acme",
        "source_type": "wiki",
        "category": "faq",
        "labels": ["x", "y"],
        "price": Decimal("9.5"),
    }
    item.update(overrides)
    return {k: v for k, v in item.items() if v is not None}


def test_a_well_formed_item_has_no_problems() -> None:
    # GIVEN an item whose every read attribute has an accepted type
    item = good_item()
    # THEN it validates, and the typed accessors read it
    assert STRICT.problems(item) == []
    assert STRICT.validate_item(item) == "d1"
    assert STRICT.acl_of(item) == ["alice", "bob", "carol"]
    assert STRICT.metadata_of(item) == {"category": "faq", "labels": ["x", "y"], "price": 9.5}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # version: an integer number (N) within what the index can order
        ({"version": Decimal("1E+30")}, "version attribute 'version' is 1E+30, above 2305843009213693951"),
        ({"version": Decimal("2.5")}, "version attribute 'version' must be a whole number, not 2.5"),
        (
            {"version": "abc"},
            "version attribute 'version' must be an integer number (N), not a string (S) 'abc'",
        ),
        ({"version": "7"}, "must be an integer number (N), not a string (S) '7'"),
        ({"version": True}, "must be an integer number (N), not a boolean (BOOL)"),
        ({"version": {"n": Decimal(1)}}, "must be an integer number (N), not a map (M)"),
        ({"version": Decimal(-1)}, "version attribute 'version' is negative (-1)"),
        ({"version": None}, "missing version attribute 'version'"),
        # id: a non-empty string that fits the index id
        ({"doc_id": Decimal(5)}, "id attribute 'doc_id' must be a string (S), not a number (N)"),
        ({"doc_id": ""}, "missing id attribute 'doc_id'"),
        ({"doc_id": "x" * 489}, "id attribute 'doc_id' is 489 bytes; at most 488"),
        # access: a string set, a list of strings or one string; never a map, number or number set
        ({"acl": {"alice": True}}, ACL_RULE + "a map (M)"),
        ({"acl": Decimal(5)}, ACL_RULE + "a number (N)"),
        ({"acl": {Decimal(1), Decimal(2)}}, ACL_RULE + "a number set (NS)"),
        (
            {"acl": ["alice", {"M": "x"}]},
            "access attribute 'acl' is a list (L) holding a map (M): principals are strings",
        ),
        ({"owners": ["alice", ""]}, "access attribute 'owners' holds an empty principal"),
        ({"acl": b"alice"}, "not binary (B)"),
        # tenant and source type: strings
        ({"tenant": {"name": "acme"}}, "tenant attribute 'tenant' must be a string (S), not a map (M)"),
        ({"tenant": Decimal(7)}, "tenant attribute 'tenant' must be a string (S), not a number (N)"),
        ({"tenant": ""}, "tenant attribute 'tenant' is an empty string"),
        (
            {"source_type": ["wiki"]},
            "source type attribute 'source_type' must be a string (S), not a list (L)",
        ),
        # content: strings
        ({"body": Decimal(42)}, "content attribute 'body' must be a string (S), not a number (N)"),
        ({"title": ["a", "b"]}, "content attribute 'title' must be a string (S), not a list (L)"),
        # metadata: scalars, or lists/sets of one scalar type
        ({"category": {"a": "b"}}, META_RULE + "a map (M)"),
        ({"labels": ["x", Decimal(1)]}, "metadata attribute 'labels' mixes numbers and strings"),
        ({"labels": [["nested"]]}, "metadata attribute 'labels' is a list (L) holding a list (L)"),
        (
            {"price": Decimal("1E+30")},
            "metadata attribute 'price' is 1E+30: outside the 64-bit integers the index stores",
        ),
        ({"category": b"\x00"}, META_RULE + "binary (B)"),
    ],
)
def test_every_wrong_type_is_malformed_naming_the_doc_and_the_attribute(
    overrides: dict[str, object], message: str
) -> None:
    # GIVEN an item with one attribute of a type its role does not accept
    item = good_item(**overrides)
    # WHEN it is validated
    with pytest.raises(MalformedRecordError) as caught:
        STRICT.validate_item(item)
    # THEN the error names the attribute and the DynamoDB type, never a Python repr
    assert message in str(caught.value)
    assert "Decimal(" not in str(caught.value) and "{'" not in str(caught.value)
    if "doc_id" not in overrides:
        assert caught.value.doc_id == "d1"


def test_each_accessor_is_strict_on_its_own() -> None:
    # GIVEN the accessors every caller (classify, reconcile, backfill, audit, CLI) uses
    # THEN each refuses its role's wrong types, naming the doc found in the item
    cases = [
        (STRICT.acl_of, {"acl": {"alice": True}}),
        (STRICT.tenant_of, {"tenant": {"x": "y"}}),
        (STRICT.source_type_of, {"source_type": Decimal(1)}),
        (STRICT.content_of, {"body": Decimal(1)}),
        (STRICT.metadata_of, {"category": {"x": "y"}}),
        (STRICT.version_of, {"version": Decimal("1E+30")}),
        (STRICT.id_of, {"doc_id": {"S": "d1"}}),
    ]
    for accessor, overrides in cases:
        with pytest.raises(MalformedRecordError) as caught:
            accessor(good_item(**overrides))
        if "doc_id" not in overrides:
            assert caught.value.doc_id == "d1", accessor


def test_problems_lists_every_bad_attribute_once() -> None:
    item = good_item(acl=Decimal(1), tenant={"a": "b"}, version="abc")
    problems = STRICT.problems(item)
    assert len(problems) == 3
    assert [p.split(" attribute ")[0] for p in problems] == ["version", "access", "tenant"]


def test_the_longest_doc_id_fits_every_chunk_id_in_opensearch() -> None:
    # GIVEN the longest doc id the schema accepts (multi-byte characters count as bytes)
    from dynembed.core.models import MAX_DOC_ID_BYTES, MAX_INDEX_ID_BYTES, chunk_id

    doc_id = "é" * (MAX_DOC_ID_BYTES // 2)
    assert STRICT.id_of({"doc_id": doc_id}) == doc_id
    # THEN a chunk id with the longest chunk key (16 hex digits, '-', a 6-digit ordinal) fits _id
    assert len(chunk_id(doc_id, "0123456789abcdef-999999").encode()) <= MAX_INDEX_ID_BYTES
    assert MAX_DOC_ID_BYTES == 488


def test_empty_acl_means_nobody_and_null_attributes_are_absent() -> None:
    assert STRICT.acl_of(good_item(acl=[], owners=None)) == []
    assert STRICT.tenant_of(good_item(tenant=None)) is None
    assert STRICT.content_of(good_item(title=None, body="  ")) == []


def test_state_of_tells_gone_tombstoned_malformed_and_live_apart() -> None:
    schema = STRICT.model_copy(update={"tombstone": TombstoneRule(attribute="status", values=("archived",))})
    assert schema.state_of(None, "d1").kind == "gone"
    assert schema.state_of(good_item(status="archived"), "d1").kind == "tombstoned"
    live = schema.state_of(good_item(), "d1")
    assert (live.kind, live.version) == ("live", 3)
    bad = schema.state_of(good_item(acl={"alice": True}), "d1")
    assert (bad.kind, bad.version) == ("malformed", 3)
    assert bad.problem is not None and "access attribute 'acl'" in str(bad.problem)
    unversioned = schema.state_of(good_item(version="abc"), "d1")
    assert (unversioned.kind, unversioned.version) == ("malformed", None)
