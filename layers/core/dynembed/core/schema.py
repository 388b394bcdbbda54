"""The operator's description of the source table: which attributes mean what.

Loaded once at cold start from a JSON/YAML file or from the ``DYNEMBED_SOURCE_SCHEMA``
environment variable (inline JSON); invalid config fails at load with the field named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dynembed.core.errors import ConfigError, MalformedRecordError
from dynembed.core.models import MAX_DOC_ID_BYTES, MAX_INDEX_ID_BYTES
from dynembed.core.versioning import MAX_SOURCE_VERSION

SCHEMA_ENV = "DYNEMBED_SOURCE_SCHEMA"


class VersionKind(StrEnum):
    NUMBER = "number"
    """A monotonic integer the source application increments on every write."""
    TIMESTAMP = "timestamp"
    """Fallback: an ISO-8601 string or epoch seconds/milliseconds; compared as epoch ms."""


class UpdateMode(StrEnum):
    IMMEDIATE = "immediate"
    BATCHED = "batched"


class UpdatePolicy(BaseModel):
    """How fast content changes of one source type or tenant must reach the index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: UpdateMode = UpdateMode.IMMEDIATE
    max_delay_seconds: int = Field(default=300, ge=1, le=86_400)
    """Batched only: held jobs are drained at least this often."""
    max_held_jobs: int = Field(default=500, ge=1)
    """Batched only: a drain starts early once this many docs are held."""


class TombstoneRule(BaseModel):
    """An item whose ``attribute`` holds one of ``values`` is treated as deleted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str = Field(min_length=1)
    values: tuple[str | bool | int, ...] = Field(min_length=1)

    def is_tombstoned(self, item: dict[str, Any]) -> bool:
        """Read as a flag: a scalar equal to one of ``values``; anything else is live."""
        value = item.get(self.attribute)
        if isinstance(value, Decimal):
            value = to_plain(value) if value.is_finite() else None
        return isinstance(value, str | bool | int | float) and value in self.values


class SourceSchema(BaseModel):
    """Which attributes of a source item the pipeline reads, and what each change costs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id_attribute: str = Field(default="doc_id", min_length=1)
    version_attribute: str = Field(default="version", min_length=1)
    version_kind: VersionKind = VersionKind.NUMBER
    updated_at_attribute: str | None = "updated_at"
    """When the source app made the change (ISO-8601 or epoch); used for freshness lag."""
    content_attributes: tuple[str, ...] = Field(default=("title", "body"), min_length=1)
    """Semantic text, in order; the first is the title and prefixes every chunk."""
    metadata_attributes: tuple[str, ...] = ()
    """Filter/display fields: a change is patched onto the chunks, never re-embedded."""
    access_attributes: tuple[str, ...] = ("acl",)
    """Principals (groups/users) allowed to read the doc; a change is patched at once."""
    tenant_attribute: str | None = "tenant"
    tenant_isolation: bool = False
    """The tenant is a security boundary for search too: a search without a tenant is refused."""
    source_type_attribute: str | None = None
    public_principal: str = "public"
    """An ACL entry that lets every principal read the doc."""
    tombstone: TombstoneRule | None = None
    default_policy: UpdatePolicy = UpdatePolicy()
    policies: dict[str, UpdatePolicy] = Field(default_factory=dict)
    """Per tenant or source type (key ``tenant:<name>`` or ``type:<name>``)."""
    schema_version: int = Field(default=1, ge=1)
    """Bump when the mapping of attributes changes; recorded on every chunk."""

    @field_validator("policies")
    @classmethod
    def _policy_keys(cls, policies: dict[str, UpdatePolicy]) -> dict[str, UpdatePolicy]:
        for key in policies:
            if not key.startswith(("tenant:", "type:")):
                raise ValueError(f"policy key {key!r} must start with 'tenant:' or 'type:'")
        return policies

    @model_validator(mode="after")
    def _roles_are_disjoint(self) -> SourceSchema:
        roles: dict[str, str] = {}

        def claim(attr: str | None, role: str) -> None:
            if attr is None:
                return
            if attr in roles and roles[attr] != role:
                raise ValueError(f"attribute {attr!r} is both {roles[attr]} and {role}")
            roles[attr] = role

        claim(self.id_attribute, "id_attribute")
        claim(self.version_attribute, "version_attribute")
        for attr in self.content_attributes:
            claim(attr, "content_attributes")
        for attr in self.metadata_attributes:
            claim(attr, "metadata_attributes")
        for attr in self.access_attributes:
            claim(attr, "access_attributes")
        if len(set(self.content_attributes)) != len(self.content_attributes):
            raise ValueError("content_attributes has duplicates")
        if self.tenant_isolation and not self.tenant_attribute:
            raise ValueError("tenant_isolation needs a tenant_attribute")
        return self

    # ---- reading items -------------------------------------------------------------------
    # Every accessor is strict: an attribute of a type its role does not accept raises
    # MalformedRecordError naming the doc and the attribute (the rules: docs/classification.md,
    # "Attribute types"). A missing or NULL attribute is absent, never an error, except the id,
    # the version, and the tenant under tenant_isolation.
    def id_of(self, item: dict[str, Any]) -> str:
        """A non-empty string (S) of at most MAX_DOC_ID_BYTES, so every chunk id fits ``_id``."""
        attr = self.id_attribute
        raw = item.get(attr)
        if raw is None or raw == "":
            raise MalformedRecordError(f"missing id attribute {attr!r}")
        if not isinstance(raw, str):
            raise MalformedRecordError(f"id attribute {attr!r} must be a string (S), not {describe(raw)}")
        size = _utf8_size(raw)
        if size is None:
            raise MalformedRecordError(f"id attribute {attr!r} is not valid UTF-8")
        if size > MAX_DOC_ID_BYTES:
            raise MalformedRecordError(
                f"id attribute {attr!r} is {size} bytes; at most {MAX_DOC_ID_BYTES} fit the index "
                f"(every chunk id <doc_id>:<chunk_key> must fit OpenSearch's {MAX_INDEX_ID_BYTES}-byte _id)",
                raw[:40] + "…",
            )
        return raw

    def version_of(self, item: dict[str, Any], doc_id: str | None = None) -> int:
        """The item's version as an integer usable as an OpenSearch external version:
        0..MAX_SOURCE_VERSION; a number (N), or for ``timestamp`` an ISO-8601 string or epoch."""
        doc_id = doc_id if doc_id is not None else self.label_of(item)
        attr = self.version_attribute
        raw = item.get(attr)
        if raw is None:
            raise MalformedRecordError(f"missing version attribute {attr!r}", doc_id)
        if self.version_kind is VersionKind.NUMBER:
            number = _number(raw)
            if number is None:
                raise MalformedRecordError(
                    f"version attribute {attr!r} must be an integer number (N), not {describe(raw)}", doc_id
                )
            if not number.is_finite() or number != number.to_integral_value():
                raise MalformedRecordError(
                    f"version attribute {attr!r} must be a whole number, not {_show_number(number)}", doc_id
                )
            value = int(number)
        else:
            try:
                value = timestamp_to_epoch_ms(raw)
            except (TypeError, ValueError, ArithmeticError, OverflowError) as exc:
                raise MalformedRecordError(
                    f"version attribute {attr!r} must be a timestamp (ISO-8601 with a timezone, or "
                    f"epoch seconds/milliseconds), not {describe(raw)}",
                    doc_id,
                ) from exc
        if value < 0:
            raise MalformedRecordError(f"version attribute {attr!r} is negative ({value})", doc_id)
        if value > MAX_SOURCE_VERSION:
            raise MalformedRecordError(
                f"version attribute {attr!r} is {_show_number(Decimal(value))}, above {MAX_SOURCE_VERSION}, "
                "the largest version the index can order (OpenSearch external versions are 64-bit "
                "and dynembed writes version×4+rank)",
                doc_id,
            )
        return value

    def updated_at_of(self, item: dict[str, Any]) -> float | None:
        """Epoch seconds of the source change, when the item says (lenient: it only times
        freshness; an unreadable value counts as absent)."""
        if not self.updated_at_attribute:
            return None
        raw = item.get(self.updated_at_attribute)
        if raw is None:
            return None
        try:
            return timestamp_to_epoch_ms(raw) / 1000.0
        except (TypeError, ValueError, ArithmeticError, OverflowError):
            return None

    def tenant_of(self, item: dict[str, Any], doc_id: str | None = None) -> str | None:
        """A non-empty string (S), or None when the schema or the item has no tenant. With
        ``tenant_isolation`` every item needs one: every search names a tenant, so an item
        without one could never be read, and is malformed instead of silently unreachable."""
        tenant = self._string(item, self.tenant_attribute, "tenant", doc_id)
        if tenant is None and self.tenant_isolation:
            raise MalformedRecordError(
                f"missing tenant attribute {self.tenant_attribute!r}: the schema isolates tenants "
                "(tenant_isolation), so every item needs one",
                doc_id if doc_id is not None else self.label_of(item),
            )
        return tenant

    def source_type_of(self, item: dict[str, Any], doc_id: str | None = None) -> str | None:
        return self._string(item, self.source_type_attribute, "source type", doc_id)

    def policy_named(self, tenant: str | None, source_type: str | None) -> UpdatePolicy:
        """The tenant's policy wins over the source type's; else the default."""
        if tenant is not None and f"tenant:{tenant}" in self.policies:
            return self.policies[f"tenant:{tenant}"]
        if source_type is not None and f"type:{source_type}" in self.policies:
            return self.policies[f"type:{source_type}"]
        return self.default_policy

    def acl_of(self, item: dict[str, Any], doc_id: str | None = None) -> list[str]:
        """Every principal named by any access attribute, sorted (a set, stored as a list).
        Each attribute is a string set (SS), a list of strings (L) or one string (S); an empty
        set or list grants nobody. A map, a number or a number set is never read as principals."""
        doc_id = doc_id if doc_id is not None else self.label_of(item)
        principals: set[str] = set()
        for attr in self.access_attributes:
            value = item.get(attr)
            if value is None:
                continue
            if isinstance(value, str):
                members: list[Any] = [value]
            elif isinstance(value, list | tuple) or (
                isinstance(value, set | frozenset) and all(isinstance(v, str) for v in value)
            ):
                members = list(value)
                odd = next((v for v in members if not isinstance(v, str)), None)
                if odd is not None or any(v is None for v in members):
                    raise MalformedRecordError(
                        f"access attribute {attr!r} is a list (L) holding {describe(odd)}: principals are strings",
                        doc_id,
                    )
            else:
                raise MalformedRecordError(
                    f"access attribute {attr!r} must be a string set (SS), a list of strings (L) or a "
                    f"string (S), not {describe(value)}",
                    doc_id,
                )
            for principal in members:
                _check_keyword(principal, f"access attribute {attr!r}", "principal", doc_id)
            principals.update(members)
        return sorted(principals)

    def metadata_of(self, item: dict[str, Any], doc_id: str | None = None) -> dict[str, Any]:
        """Each metadata attribute as the chunks store it: a string, number, boolean or null, or a
        list or set of one of those types (sets sorted). Maps, binary and mixed lists are refused:
        the index maps one type per field."""
        doc_id = doc_id if doc_id is not None else self.label_of(item)
        return {
            attr: _metadata_value(attr, item[attr], doc_id)
            for attr in self.metadata_attributes
            if attr in item
        }

    def content_of(self, item: dict[str, Any], doc_id: str | None = None) -> list[tuple[str, str]]:
        """(attribute, text) in configured order, empty values left out; each a string (S)."""
        parts = []
        for attr in self.content_attributes:
            value = item.get(attr)
            if value is None:
                continue
            if not isinstance(value, str):
                raise MalformedRecordError(
                    f"content attribute {attr!r} must be a string (S), not {describe(value)}",
                    doc_id if doc_id is not None else self.label_of(item),
                )
            if value.strip():
                parts.append((attr, value))
        return parts

    # ---- whole items ---------------------------------------------------------------------
    def problems(self, item: dict[str, Any]) -> list[str]:
        """Every read attribute of ``item`` that breaks its role's rules, one message each, in
        role order (id, version, content, metadata, access, tenant, source type); [] when the
        item is well-formed."""
        found: list[str] = []
        checks: list[Callable[[], object]] = [
            lambda: self.id_of(item),
            lambda: self.version_of(item),
            lambda: self.content_of(item),
            lambda: self.metadata_of(item),
            lambda: self.acl_of(item),
            lambda: self.tenant_of(item),
            lambda: self.source_type_of(item),
        ]
        for check in checks:
            try:
                check()
            except MalformedRecordError as exc:
                found.append(exc.detail)
        return found

    def validate_item(self, item: dict[str, Any], doc_id: str | None = None) -> str:
        """The item's doc id; raises MalformedRecordError naming the doc and every bad attribute."""
        problems = self.problems(item)
        if problems:
            raise MalformedRecordError(
                "; ".join(problems), doc_id if doc_id is not None else self.label_of(item)
            )
        return self.id_of(item)

    def state_of(self, item: dict[str, Any] | None, doc_id: str) -> ItemState:
        """What the current source item means for the index: gone, tombstoned, malformed (its
        chunks must not be served) or live. ``version`` is the item's when it is readable."""
        if item is None:
            return ItemState("gone")
        try:
            version: int | None = self.version_of(item, doc_id)
        except MalformedRecordError:
            version = None
        problems = self.problems(item)
        if problems:
            return ItemState("malformed", version, MalformedRecordError("; ".join(problems), doc_id))
        if self.tombstone is not None and self.tombstone.is_tombstoned(item):
            return ItemState("tombstoned", version)
        return ItemState("live", version)

    def label_of(self, item: dict[str, Any]) -> str | None:
        """The item's id for error messages, when it is a usable one."""
        raw = item.get(self.id_attribute)
        if isinstance(raw, str) and raw and (_utf8_size(raw) or MAX_DOC_ID_BYTES + 1) <= MAX_DOC_ID_BYTES:
            return raw
        return None

    def _string(self, item: dict[str, Any], attr: str | None, role: str, doc_id: str | None) -> str | None:
        if not attr:
            return None
        value = item.get(attr)
        if value is None:
            return None
        label = doc_id if doc_id is not None else self.label_of(item)
        if not isinstance(value, str):
            raise MalformedRecordError(
                f"{role} attribute {attr!r} must be a string (S), not {describe(value)}", label
            )
        if value == "":
            raise MalformedRecordError(
                f"{role} attribute {attr!r} is an empty string (leave the attribute out for none)", label
            )
        _check_keyword(value, f"{role} attribute {attr!r}", "value", label)
        return value

    # ---- loading ---------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: dict[str, Any], origin: str = "source schema") -> SourceSchema:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid {origin}: {problems}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> SourceSchema:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read source schema file {path}: {exc.strerror}") from exc
        try:
            data = yaml.safe_load(text) if path.suffix in {".yaml", ".yml"} else json.loads(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise ConfigError(f"source schema file {path} is not valid {path.suffix[1:]}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"source schema file {path} must hold an object")
        return cls.from_mapping(data, origin=f"source schema {path}")

    @classmethod
    def from_json(cls, text: str, origin: str = SCHEMA_ENV) -> SourceSchema:
        """The schema as ``DYNEMBED_SOURCE_SCHEMA`` carries it (read through ``Settings``)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{origin} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{origin} must hold an object")
        return cls.from_mapping(data, origin=origin)

    def to_env_value(self) -> str:
        return self.model_dump_json(exclude_defaults=False)


class ItemState(NamedTuple):
    """``SourceSchema.state_of``: what the current source item means for the index."""

    kind: Literal["gone", "tombstoned", "malformed", "live"]
    version: int | None = None
    problem: MalformedRecordError | None = None


KEYWORD_MAX_BYTES = 32_766
"""Lucene's longest term: a longer principal or tenant would fail the index write."""


def describe(value: Any) -> str:
    """A value's DynamoDB type in words, with short scalars shown (never a Python repr of a
    container or a Decimal), for error messages."""
    if value is None:
        return "null (NULL)"
    if isinstance(value, bool):
        return "a boolean (BOOL)"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "…"
        return f"a string (S) {shown!r}"
    if _number(value) is not None:
        return "a number (N)"
    if _is_binary(value):
        return "binary (B)"
    if isinstance(value, dict):
        return "a map (M)"
    if isinstance(value, list | tuple):
        return "a list (L)"
    if isinstance(value, set | frozenset):
        if value and all(isinstance(v, str) for v in value):
            return "a string set (SS)"
        if value and all(_number(v) is not None for v in value):
            return "a number set (NS)"
        if value and all(_is_binary(v) for v in value):
            return "a binary set (BS)"
        return "a set"
    return f"a {type(value).__name__}"


def _number(value: Any) -> Decimal | None:
    """A DynamoDB number (Decimal from boto3, int/float from fakes) as a Decimal; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else Decimal("NaN")
    return None


def _show_number(number: Decimal) -> str:
    text = str(number.normalize()) if number.is_finite() else str(number)
    return text if len(text) <= 30 else f"{number:.3E}"


def _is_binary(value: Any) -> bool:
    # boto3.dynamodb.types.Binary is matched by name, so the core need not import boto3.
    return isinstance(value, bytes | bytearray | memoryview) or type(value).__name__ == "Binary"


def _utf8_size(text: str) -> int | None:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _check_keyword(value: str, where: str, what: str, doc_id: str | None) -> None:
    if value == "":
        raise MalformedRecordError(f"{where} holds an empty {what}", doc_id)
    size = _utf8_size(value)
    if size is None or size > KEYWORD_MAX_BYTES:
        raise MalformedRecordError(
            f"{where} holds a {what} that is not UTF-8 text of at most {KEYWORD_MAX_BYTES} bytes", doc_id
        )


_INT64 = (-(2**63), 2**63 - 1)


def _scalar_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "booleans"
    if isinstance(value, str):
        return "strings"
    if _number(value) is not None:
        return "numbers"
    return None


def _plain_number(attr: str, number: Decimal, doc_id: str | None) -> int | float:
    if not number.is_finite():
        raise MalformedRecordError(f"metadata attribute {attr!r} is not a finite number", doc_id)
    if number == number.to_integral_value():
        value = int(number)
        if not _INT64[0] <= value <= _INT64[1]:
            raise MalformedRecordError(
                f"metadata attribute {attr!r} is {_show_number(number)}: outside the 64-bit integers "
                "the index stores",
                doc_id,
            )
        return value
    return float(number)


def _metadata_value(attr: str, value: Any, doc_id: str | None) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    number = _number(value)
    if number is not None:
        return _plain_number(attr, number, doc_id)
    if isinstance(value, list | tuple | set | frozenset) and not _is_binary(value):
        kinds = set()
        for element in value:
            kind = _scalar_kind(element)
            if kind is None:
                container = "a list (L)" if isinstance(value, list | tuple) else "a set"
                raise MalformedRecordError(
                    f"metadata attribute {attr!r} is {container} holding {describe(element)}: "
                    "only strings, numbers or booleans",
                    doc_id,
                )
            kinds.add(kind)
        if len(kinds) > 1:
            raise MalformedRecordError(
                f"metadata attribute {attr!r} mixes {' and '.join(sorted(kinds))}: the index needs one "
                "type per field",
                doc_id,
            )
        plain = [_plain_number(attr, n, doc_id) if (n := _number(v)) is not None else v for v in value]
        return sorted(plain) if isinstance(value, set | frozenset) else plain
    raise MalformedRecordError(
        f"metadata attribute {attr!r} must be a string, number, boolean or null, or a list or set "
        f"of them, not {describe(value)}",
        doc_id,
    )


def timestamp_to_epoch_ms(raw: Any) -> int:
    """ISO-8601 string or epoch seconds/milliseconds → epoch milliseconds."""
    if isinstance(raw, bool):
        raise TypeError("boolean is not a timestamp")
    if isinstance(raw, int | float | Decimal):
        number = float(raw)
        return int(number if number > 1e11 else number * 1000)
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return timestamp_to_epoch_ms(Decimal(text))
        except ArithmeticError:
            pass
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {raw!r} has no timezone")
        return int(parsed.timestamp() * 1000)
    raise TypeError(f"unsupported timestamp {raw!r}")


def to_plain(value: Any) -> Any:
    """DynamoDB-decoded values (Decimal, set) → JSON-friendly Python."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(to_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return value
