"""Deployment settings read from CDK context (``cdk.json`` or ``-c key=value``), validated once.

Every key lives under the ``dynembed:`` prefix. A typo or a bad value fails the synth with the
key named, before a single resource is built: a wrong ARN found at deploy time costs minutes,
found here it costs nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dynembed.core.config import IamCaller
from dynembed.core.errors import ConfigError
from dynembed.core.schema import SourceSchema

PREFIX = "dynembed:"

_STREAM_ARN = re.compile(
    r"^arn:aws[a-z-]*:dynamodb:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"table/(?P<table>[A-Za-z0-9_.-]{3,255})/stream/(?P<label>[^/]+)$"
)
_DOMAIN_ARN = re.compile(r"^arn:aws[a-z-]*:es:[a-z0-9-]+:\d{12}:domain/[a-z][a-z0-9-]{2,27}$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/(mrk-)?[0-9a-f-]{32,36}$")
_S3_PREFIX = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/(?P<prefix>.*))?$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9._:-]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_IAM_CALLER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
_ISSUER = re.compile(r"^https://[^\s/?#]+(/[^\s?#]*)?$")
MAX_IAM_CALLERS_ENV_BYTES = 600
"""DYNEMBED_IDENTITY_IAM_CALLERS goes to every function; Lambda's environment is 4 KB in all."""
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class OpenSearchSizing(_Strict):
    """The managed domain's shape. Defaults: a small but highly available production domain."""

    engine_version: str = Field(default="3.3", pattern=r"^\d+\.\d+$")
    """OpenSearch engine version (the k-NN plugin ships with every 2.x and 3.x)."""
    data_nodes: int = Field(default=2, ge=1)
    data_node_instance_type: str = "r7g.large.search"
    dedicated_master_nodes: int = Field(default=0, ge=0)
    """0 = none. Use 3 for domains above a handful of data nodes."""
    dedicated_master_instance_type: str = "m7g.large.search"
    availability_zones: int = Field(default=2, ge=1, le=3)
    """Zone awareness across this many AZs; 1 turns it off."""
    volume_size_gib: int = Field(default=20, ge=10)

    @model_validator(mode="after")
    def _shape_is_deployable(self) -> OpenSearchSizing:
        if self.dedicated_master_nodes not in (0, 3, 5):
            raise ValueError("dedicatedMasterNodes must be 0, 3 or 5")
        if self.availability_zones > 1 and self.data_nodes % self.availability_zones:
            raise ValueError(
                f"dataNodes ({self.data_nodes}) must be a multiple of availabilityZones "
                f"({self.availability_zones}) for zone awareness"
            )
        return self


class VpcPlacement(_Strict):
    """An existing VPC to put the domain and the functions that reach it into (no lookups:
    synth stays offline). The subnets need routes to DynamoDB, SQS, Bedrock, X-Ray and
    CloudWatch (NAT or VPC endpoints)."""

    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]+$")
    subnet_ids: tuple[str, ...] = Field(min_length=1)
    availability_zones: tuple[str, ...] = Field(min_length=1)

    @field_validator("subnet_ids")
    @classmethod
    def _subnet_ids(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        for subnet in ids:
            if not re.fullmatch(r"subnet-[0-9a-f]+", subnet):
                raise ValueError(f"{subnet!r} is not a subnet id")
        return ids

    @model_validator(mode="after")
    def _one_subnet_per_zone(self) -> VpcPlacement:
        if len(self.subnet_ids) != len(self.availability_zones):
            raise ValueError("give one availability zone per subnet id, in the same order")
        return self


class ClaimsConfig(_Strict):
    """Which JWT claims make the caller's ACL principals and tenant (``dynembed.query.identity``)."""

    user: str = Field(default="sub", min_length=1)
    """The claim holding the user id."""
    groups: str = "cognito:groups"
    """The claim holding the groups; "" when the tokens carry none."""
    tenant: str = "custom:tenant"
    """The claim holding the tenant; "" when the tokens carry none."""
    user_prefix: str = ""
    """Prepended to the user id to make its ACL principal (e.g. "user:")."""
    group_prefix: str = ""
    """Prepended to each group to make its ACL principal (e.g. "group:")."""


class SearchApiConfig(_Strict):
    """The HTTP API in front of the search function. ``POST /search`` (JWT) exists when an
    issuer is given; ``POST /iam/search`` (IAM auth) always, refusing callers not listed."""

    jwt_issuer: str | None = None
    """The token issuer, e.g. https://cognito-idp.<region>.amazonaws.com/<user pool id>."""
    jwt_audience: tuple[str, ...] = ()
    """Accepted ``aud`` (ID tokens) or ``client_id`` (Cognito access tokens) values."""
    claims: ClaimsConfig = Field(default_factory=ClaimsConfig)
    iam_callers: dict[str, IamCaller] = Field(default_factory=dict)
    """IAM role (or user) ARN -> {"principals": [...], "tenant": ...} for ``POST /iam/search``."""
    throttle_rate_limit: float = Field(default=50.0, gt=0)
    """Steady requests per second the stage accepts (all callers together)."""
    throttle_burst_limit: int = Field(default=100, ge=1)

    @field_validator("jwt_issuer")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        if value is not None and not _ISSUER.fullmatch(value):
            raise ValueError(f"{value!r} is not an https:// issuer URL")
        return value

    @field_validator("iam_callers")
    @classmethod
    def _callers(cls, callers: dict[str, IamCaller]) -> dict[str, IamCaller]:
        for arn in callers:
            if not _IAM_CALLER_ARN.fullmatch(arn):
                raise ValueError(f"{arn!r} is not an IAM role or user ARN")
        return callers

    @model_validator(mode="after")
    def _jwt_is_complete(self) -> SearchApiConfig:
        if bool(self.jwt_issuer) != bool(self.jwt_audience):
            raise ValueError("give searchApi.jwtIssuer and searchApi.jwtAudience together, or neither")
        if len(self.iam_callers_json.encode()) > MAX_IAM_CALLERS_ENV_BYTES:
            raise ValueError(
                f"searchApi.iamCallers is over {MAX_IAM_CALLERS_ENV_BYTES} bytes as JSON (every function "
                "carries it in a 4 KB environment): map roles to fewer, shorter principals"
            )
        return self

    @property
    def iam_callers_json(self) -> str:
        return json.dumps(
            {arn: caller.model_dump() for arn, caller in sorted(self.iam_callers.items())},
            separators=(",", ":"),
        )


class LiveQueryConfig(_Strict):
    """Live-query signals and shadow searches (``dynembed.query.signals``)."""

    sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of live searches recorded as samples (their figures also go to CloudWatch)."""
    shadow_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of live searches also run on a rebuild's candidate while it builds."""
    keep_query_text: bool = False
    """Store sampled query text; else only its sha256 and length (queries are user data)."""
    retention_days: int = Field(default=7, ge=1, le=90)
    """Samples and shadow comparisons expire after this (DynamoDB TTL)."""


class DeploymentConfig(_Strict):
    """Everything an operator may set per deployment; the rest comes from ``dynembed.core.config``."""

    source_schema: SourceSchema = Field(default_factory=SourceSchema)
    existing_source_table_name: str | None = None
    existing_source_stream_arn: str | None = None
    existing_source_table_key_arn: str | None = None
    """The attached table's customer-managed KMS key, if it has one (classify must decrypt the stream)."""
    existing_open_search_endpoint: str | None = None
    existing_open_search_domain_arn: str | None = None
    open_search: OpenSearchSizing = Field(default_factory=OpenSearchSizing)
    vpc: VpcPlacement | None = None
    bedrock_models: tuple[str, ...] = Field(default=("amazon.titan-embed-text-v2:0",), min_length=1)
    audit_rate_minutes: int = Field(default=60, ge=1, le=1440)
    log_retention_days: int = 30
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    eval_dir: str = ""
    """DYNEMBED_EVAL_DIR: the default golden set; an ``s3://bucket/prefix`` is granted read access."""
    eval_set_locations: tuple[str, ...] = ()
    """More ``s3://bucket/prefix`` locations rebuild inputs may name as golden sets (read-only)."""
    search_api: SearchApiConfig = Field(default_factory=SearchApiConfig)
    live_queries: LiveQueryConfig = Field(default_factory=LiveQueryConfig)
    search_invoker_role_arns: tuple[str, ...] = ()
    """Roles the search function's resource policy lets invoke it directly (trusted back ends
    that name the principal themselves). None: only the HTTP API invokes it."""

    @field_validator("search_invoker_role_arns")
    @classmethod
    def _invoker_roles(cls, arns: tuple[str, ...]) -> tuple[str, ...]:
        for arn in arns:
            if not _ROLE_ARN.fullmatch(arn):
                raise ValueError(f"{arn!r} is not an IAM role ARN")
        return arns

    @field_validator("source_schema", mode="before")
    @classmethod
    def _schema(cls, value: Any) -> SourceSchema:
        if isinstance(value, SourceSchema):
            return value
        if not isinstance(value, Mapping):
            raise ValueError("must be an object (the SourceSchema fields)")
        try:
            return SourceSchema.from_mapping(dict(value), origin="source schema")
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("bedrock_models")
    @classmethod
    def _model_ids(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        for model_id in ids:
            if not _MODEL_ID.fullmatch(model_id):
                raise ValueError(f"{model_id!r} is not a Bedrock model id")
        return ids

    @field_validator("eval_set_locations")
    @classmethod
    def _s3_prefixes(cls, locations: tuple[str, ...]) -> tuple[str, ...]:
        for location in locations:
            if not _S3_PREFIX.fullmatch(location):
                raise ValueError(f"{location!r} is not an s3://bucket/prefix location")
        return locations

    @field_validator("eval_dir")
    @classmethod
    def _eval_dir(cls, value: str) -> str:
        if value.startswith("s3://") and not _S3_PREFIX.fullmatch(value):
            raise ValueError(f"{value!r} is not an s3://bucket/prefix location")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {LOG_RETENTION_DAYS}")
        return days

    @model_validator(mode="after")
    def _existing_resources_are_complete(self) -> DeploymentConfig:
        _both_or_neither(
            "existingSourceTableName", self.existing_source_table_name,
            "existingSourceStreamArn", self.existing_source_stream_arn,
        )  # fmt: skip
        if self.existing_source_stream_arn:
            match = _STREAM_ARN.fullmatch(self.existing_source_stream_arn)
            if not match:
                raise ValueError(
                    f"{PREFIX}existingSourceStreamArn {self.existing_source_stream_arn!r} is not a DynamoDB stream ARN "
                    "(arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>)"
                )
            if match["table"] != self.existing_source_table_name:
                raise ValueError(
                    f"{PREFIX}existingSourceStreamArn belongs to table {match['table']!r}, "
                    f"not {PREFIX}existingSourceTableName {self.existing_source_table_name!r}"
                )
        if self.existing_source_table_key_arn:
            if not self.existing_source_table_name:
                raise ValueError(
                    f"{PREFIX}existingSourceTableKeyArn is set but no existing table is: it is the key of "
                    f"{PREFIX}existingSourceTableName"
                )
            if not _KMS_KEY_ARN.fullmatch(self.existing_source_table_key_arn):
                raise ValueError(
                    f"{PREFIX}existingSourceTableKeyArn {self.existing_source_table_key_arn!r} is not a KMS key "
                    "ARN (arn:aws:kms:<region>:<account>:key/<id>)"
                )
        _both_or_neither(
            "existingOpenSearchEndpoint", self.existing_open_search_endpoint,
            "existingOpenSearchDomainArn", self.existing_open_search_domain_arn,
        )  # fmt: skip
        if self.existing_open_search_endpoint and not re.fullmatch(
            r"https://[A-Za-z0-9.-]+(:\d+)?/?", self.existing_open_search_endpoint
        ):
            raise ValueError(
                f"{PREFIX}existingOpenSearchEndpoint {self.existing_open_search_endpoint!r} must be an https:// URL "
                "with no path (the domain endpoint)"
            )
        if self.existing_open_search_domain_arn and not _DOMAIN_ARN.fullmatch(
            self.existing_open_search_domain_arn
        ):
            raise ValueError(
                f"{PREFIX}existingOpenSearchDomainArn {self.existing_open_search_domain_arn!r} is not an "
                "OpenSearch domain ARN (arn:aws:es:<region>:<account>:domain/<name>)"
            )
        return self

    @property
    def eval_read_locations(self) -> list[tuple[str, str]]:
        """(bucket, key prefix) pairs the workflow may read golden sets from."""
        locations = [*self.eval_set_locations]
        if self.eval_dir.startswith("s3://"):
            locations.append(self.eval_dir)
        pairs = []
        for location in locations:
            match = _S3_PREFIX.fullmatch(location)
            if match:
                pairs.append((match["bucket"], match["prefix"] or ""))
        return pairs

    @property
    def creates_source_table(self) -> bool:
        return self.existing_source_table_name is None

    @property
    def creates_domain(self) -> bool:
        return self.existing_open_search_endpoint is None

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> DeploymentConfig:
        """Parse every ``dynembed:*`` key of ``context``; unknown keys are typos and fail."""
        known = {field.alias or name: name for name, field in cls.model_fields.items()}
        values: dict[str, Any] = {}
        for key, value in context.items():
            if not key.startswith(PREFIX):
                continue
            short = key[len(PREFIX) :]
            if short not in known:
                raise ConfigError(
                    f"unknown CDK context key {key!r}; known keys: "
                    + ", ".join(PREFIX + k for k in sorted(known))
                )
            if value is not None:
                values[short] = value
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(_describe(err) for err in exc.errors())
            raise ConfigError(f"invalid CDK context: {problems}") from exc


def _both_or_neither(name_a: str, value_a: object, name_b: str, value_b: object) -> None:
    if bool(value_a) != bool(value_b):
        given, missing = (name_a, name_b) if value_a else (name_b, name_a)
        raise ValueError(f"{PREFIX}{given} is set but {PREFIX}{missing} is not: give both or neither")


def _describe(err: Mapping[str, Any]) -> str:
    loc = [str(part) for part in err["loc"]]
    message = str(err["msg"]).removeprefix("Value error, ")
    if not loc:  # a cross-field rule: its message names the keys
        return message
    return f"{PREFIX}{loc[0]}" + "".join(f".{p}" for p in loc[1:]) + f": {message}"
