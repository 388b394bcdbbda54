"""The price table every cost figure is computed from: one place, each price with its unit,
its source and the date it was read, so a budget can say which numbers it rests on.

All prices are USD, on-demand, us-east-1. None was read from an AWS pricing page by dynembed's
authors: ``verified=False`` marks every row whose source is a third-party copy of the AWS Price
List or a figure not found at all (docs/cost.md lists them). Override any row with the
``DYNEMBED_PRICES`` setting: a JSON object, inline or in a file, e.g.
``{"embedding": {"bedrock-titan-v2-1024": {"usd": 0.02}}, "aws": {"opensearch_instance_hour": {"usd": 0.2}}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dynembed.core.errors import ConfigError


class Price(BaseModel):
    """``usd`` per ``per`` ``unit`` (e.g. 0.02 per 1,000,000 input tokens)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    usd: float = Field(ge=0)
    unit: str
    per: float = Field(default=1.0, gt=0)
    source: str
    as_of: str
    """When the figure was read (YYYY-MM-DD or YYYY-MM)."""
    verified: bool = False
    """Read from AWS's own pricing page or Price List API by us; False: re-check before budgeting."""

    def cost(self, quantity: float) -> float:
        return quantity * self.usd / self.per


_LITELLM = "LiteLLM model price table (bundled in a third-party repository), 2026"
_PRICE_LIST_3P = "third-party copy of the AWS Price List API (us-east-1)"

EMBEDDING_PRICES: dict[str, Price] = {
    **{
        f"bedrock-titan-v2-{dim}": Price(
            usd=0.02,
            unit="input tokens",
            per=1_000_000,
            source=f"{_LITELLM}; OpenRouter and Vercel AI Gateway list the same $0.02/M",
            as_of="2026",
        )
        for dim in (256, 512, 1024)
    },
    **{
        name: Price(usd=0.10, unit="input tokens", per=1_000_000, source=_LITELLM, as_of="2026")
        for name in ("bedrock-cohere-en-v3", "bedrock-cohere-multilingual-v3")
    },
    **{
        name: Price(
            usd=0.0,
            unit="input tokens",
            per=1_000_000,
            source="runs in the function itself: its cost is Lambda duration, not tokens",
            as_of="2026-10",
            verified=True,
        )
        for name in ("minilm", "static-64", "hash-256")
    },
}

AWS_PRICES: dict[str, Price] = {
    "dynamodb_rru": Price(
        usd=0.125, unit="read request units", per=1_000_000, source=_PRICE_LIST_3P, as_of="2026-09-29"
    ),
    "dynamodb_wru": Price(
        usd=0.625, unit="write request units", per=1_000_000, source=_PRICE_LIST_3P, as_of="2026-09-29"
    ),
    "dynamodb_storage_gb_month": Price(
        usd=0.25,
        unit="GB-month",
        source="commonly quoted DynamoDB Standard storage price; not found in the stored sources",
        as_of="2026-10",
    ),
    "streams_read_request": Price(
        usd=0.0,
        unit="GetRecords",
        source="DynamoDB Streams reads made by a Lambda event source mapping are not charged "
        "($0.02/100k for other readers, third-party Price List copy 2026-09-29)",
        as_of="2026-09-29",
    ),
    "sqs_request": Price(
        usd=0.40, unit="requests (64 KB chunks)", per=1_000_000, source=_PRICE_LIST_3P, as_of="2026-09-29"
    ),
    "lambda_request": Price(
        usd=0.20, unit="invocations", per=1_000_000, source=_PRICE_LIST_3P, as_of="2026-09-29"
    ),
    "lambda_gb_s": Price(
        usd=0.0000166667, unit="GB-seconds (x86)", source=_PRICE_LIST_3P, as_of="2026-09-29"
    ),
    "sfn_transition": Price(
        usd=0.025,
        unit="state transitions (Standard)",
        per=1_000,
        source="third-party fallback table, undated",
        as_of="2026",
    ),
    "opensearch_instance_hour": Price(
        usd=0.178, unit="r7g.large.search instance-hours", source=_PRICE_LIST_3P, as_of="2026-10-01"
    ),
    "opensearch_storage_gb_month": Price(
        usd=0.122,
        unit="gp3 GB-month",
        source="commonly quoted EBS gp3 price for OpenSearch Service; not found in the stored sources",
        as_of="2026-10",
    ),
    "osi_ocu_hour": Price(
        usd=0.24,
        unit="OpenSearch Ingestion OCU-hours",
        source="NOT FOUND: the OpenSearch Serverless OCU-hour price ($0.24, third-party Price List "
        "copy 2026-09-29) used as a stand-in",
        as_of="2026-09-29",
    ),
}


class PriceTable(BaseModel):
    """Embedding prices by catalog model id, AWS prices by name."""

    model_config = ConfigDict(frozen=True)

    region: str = "us-east-1"
    embedding: dict[str, Price] = Field(default_factory=lambda: dict(EMBEDDING_PRICES))
    aws: dict[str, Price] = Field(default_factory=lambda: dict(AWS_PRICES))

    def embedding_price(self, model_id: str) -> Price:
        try:
            return self.embedding[model_id]
        except KeyError:
            raise ConfigError(
                f"no embedding price for model {model_id!r}: add it with DYNEMBED_PRICES "
                f'(e.g. {{"embedding": {{"{model_id}": {{"usd": 0.02}}}}}}); known: {", ".join(sorted(self.embedding))}'
            ) from None

    def embedding_cost(self, model_id: str, tokens: float) -> float:
        return self.embedding_price(model_id).cost(tokens)

    def aws_cost(self, name: str, quantity: float) -> float:
        return self.aws[name].cost(quantity)

    def unverified(self) -> list[str]:
        rows = [f"embedding.{k}" for k, p in self.embedding.items() if not p.verified]
        return rows + [f"aws.{k}" for k, p in self.aws.items() if not p.verified]

    def with_overrides(self, overrides: Mapping[str, Any]) -> PriceTable:
        """Each override replaces fields of one row (``usd`` alone is enough); its source
        becomes "override" unless it names one."""
        unknown = set(overrides) - {"embedding", "aws", "region"}
        if unknown:
            raise ConfigError(f"DYNEMBED_PRICES: unknown section(s) {sorted(unknown)}; use embedding, aws")
        sections: dict[str, dict[str, Price]] = {"embedding": dict(self.embedding), "aws": dict(self.aws)}
        for section, rows in sections.items():
            for name, change in (overrides.get(section) or {}).items():
                if not isinstance(change, Mapping):
                    raise ConfigError(
                        f'DYNEMBED_PRICES: {section}.{name} must be an object like {{"usd": 0.02}}'
                    )
                base = rows.get(name)
                fields = {
                    "source": "override (DYNEMBED_PRICES)",
                    "as_of": "override",
                    "verified": False,
                    **change,
                }
                try:
                    rows[name] = base.model_copy(update=fields) if base else Price(unit="units", **fields)
                    Price.model_validate(rows[name].model_dump())
                except ValidationError as exc:
                    raise ConfigError(
                        f"DYNEMBED_PRICES: {section}.{name}: {exc.errors()[0]['msg']}"
                    ) from None
        return PriceTable(region=str(overrides.get("region", self.region)), **sections)


def load_prices(setting: str | None = None) -> PriceTable:
    """The shipped table with ``DYNEMBED_PRICES`` applied (inline JSON or a path to a JSON file)."""
    if setting is None:
        from dynembed.core.config import load_settings

        setting = load_settings().prices
    setting = (setting or "").strip()
    if not setting:
        return PriceTable()
    text = setting if setting.startswith("{") else _read(setting)
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"DYNEMBED_PRICES is not valid JSON: {exc}") from None
    if not isinstance(overrides, Mapping):
        raise ConfigError("DYNEMBED_PRICES must be a JSON object")
    return PriceTable().with_overrides(overrides)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"DYNEMBED_PRICES: cannot read {path}: {exc.strerror}") from None
