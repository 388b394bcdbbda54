"""The operator's description of the source table: which attributes mean what.

Loaded once at cold start from a JSON/YAML file or from the ``DYNEMBED_SOURCE_SCHEMA``
environment variable (inline JSON); invalid config fails at load with the field named.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dynembed.core.errors import ConfigError

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
        value = item.get(self.attribute)
        if isinstance(value, Decimal):
            value = int(value)
        return value is not None and value in self.values


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
    def version_of(self, item: dict[str, Any], doc_id: str | None = None) -> int:
        """The item's version as an integer usable as an OpenSearch external version."""
        from dynembed.core.errors import MalformedRecordError

        raw = item.get(self.version_attribute)
        if raw is None:
            raise MalformedRecordError(f"missing version attribute {self.version_attribute!r}", doc_id)
        try:
            if self.version_kind is VersionKind.NUMBER:
                if isinstance(raw, bool):
                    raise TypeError("boolean")
                value = int(Decimal(str(raw)))
                if Decimal(str(raw)) != value:
                    raise ValueError("not an integer")
            else:
                value = timestamp_to_epoch_ms(raw)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise MalformedRecordError(
                f"version attribute {self.version_attribute!r} is not a valid {self.version_kind}: {raw!r}",
                doc_id,
            ) from exc
        if value < 0:
            raise MalformedRecordError(f"version attribute {self.version_attribute!r} is negative", doc_id)
        return value

    def id_of(self, item: dict[str, Any]) -> str:
        from dynembed.core.errors import MalformedRecordError

        raw = item.get(self.id_attribute)
        if raw is None or str(raw) == "":
            raise MalformedRecordError(f"missing id attribute {self.id_attribute!r}")
        return str(raw)

    def updated_at_of(self, item: dict[str, Any]) -> float | None:
        """Epoch seconds of the source change, when the item says."""
        if not self.updated_at_attribute:
            return None
        raw = item.get(self.updated_at_attribute)
        if raw is None:
            return None
        try:
            return timestamp_to_epoch_ms(raw) / 1000.0
        except (TypeError, ValueError):
            return None

    def tenant_of(self, item: dict[str, Any]) -> str | None:
        if not self.tenant_attribute:
            return None
        value = item.get(self.tenant_attribute)
        return None if value is None else str(value)

    def source_type_of(self, item: dict[str, Any]) -> str | None:
        if not self.source_type_attribute:
            return None
        value = item.get(self.source_type_attribute)
        return None if value is None else str(value)

    def policy_named(self, tenant: str | None, source_type: str | None) -> UpdatePolicy:
        """The tenant's policy wins over the source type's; else the default."""
        if tenant is not None and f"tenant:{tenant}" in self.policies:
            return self.policies[f"tenant:{tenant}"]
        if source_type is not None and f"type:{source_type}" in self.policies:
            return self.policies[f"type:{source_type}"]
        return self.default_policy

    def acl_of(self, item: dict[str, Any]) -> list[str]:
        """Every principal named by any access attribute, sorted (a set, stored as a list)."""
        principals: set[str] = set()
        for attr in self.access_attributes:
            value = item.get(attr)
            if value is None:
                continue
            if isinstance(value, str):
                principals.add(value)
            else:
                principals.update(str(v) for v in value)
        return sorted(principals)

    def metadata_of(self, item: dict[str, Any]) -> dict[str, Any]:
        return {attr: to_plain(item.get(attr)) for attr in self.metadata_attributes if attr in item}

    def content_of(self, item: dict[str, Any]) -> list[tuple[str, str]]:
        """(attribute, text) in configured order, empty values left out."""
        parts = []
        for attr in self.content_attributes:
            value = item.get(attr)
            if value is None:
                continue
            text = value if isinstance(value, str) else json.dumps(to_plain(value), sort_keys=True)
            if text.strip():
                parts.append((attr, text))
        return parts

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
