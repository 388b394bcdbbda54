"""SourceSchema: loading, validation errors that name the field, and reading items."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dynembed.core.errors import ConfigError, MalformedRecordError
from dynembed.core.schema import SourceSchema, UpdateMode, VersionKind

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
    with pytest.raises(MalformedRecordError, match=r"'d1'.*not a valid number"):
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
