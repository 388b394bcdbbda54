"""A month of dynembed for a workload, from measured counts and the price table.

Inputs: the per-change and per-rebuilt-item counts ``dynembed bench cost`` measured on the
local stack (``bench/results/cost_counts.json``), the workload (documents, changes a day and
their mix, the embedding model, rebuilds a month) and the price table. docs/cost.md explains
every line; in short:

- **Per change**, as measured: DynamoDB read and write units, OpenSearch bulk items, texts and
  characters embedded (characters → tokens at the model's rate: ``dynembed.cost.tokens``).
- **Per batch**, re-derived for the arrival rate (the benchmark drained full batches): Lambda
  invocations, SQS receives and deletes, and each invocation's fixed duration. A stream shard
  or queue delivers ``min(batch size, max(1, rate × batching window))`` records per batch.
- **Fixed**: the OpenSearch domain (data nodes sized from the vectors' memory, at least two),
  its storage, DynamoDB storage of the ledger and the embedding cache, and SQS's idle polling.
- **Amazon OpenSearch Ingestion**, for the same workload: OCU-hours of an always-on pipeline,
  plus what the usual way of embedding behind it (an ingest pipeline with a text-embedding
  processor) embeds: the whole document again on every content, metadata or access change.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dynembed.core.config import TUNING
from dynembed.core.errors import ConfigError
from dynembed.cost.prices import PriceTable
from dynembed.cost.tokens import CHARS_PER_TOKEN

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
KINDS = ("content", "metadata", "access", "delete")
GIB = 1024**3
KNN_GIB_PER_NODE = 4.0
"""r7g.large.search: 16 GiB RAM, half for the JVM heap, half of the rest for k-NN graphs
(the k-NN circuit breaker's default)."""
HNSW_M = 16
REPLICAS = 1
SQS_IDLE_REQUESTS_PER_MONTH = 5 * 3 * 60 * HOURS_PER_MONTH
"""An SQS event source mapping keeps about five pollers long-polling (20 s) when the queue is
idle: 5 × 3 a minute. Unverified: AWS does not publish the poller count."""
LEDGER_ROW_BYTES = 300
INDEX_TEXT_BYTES_PER_CHUNK = 1500
"""A chunk's stored fields besides its vector (passage, ids, ACL, metadata)."""


class Workload(BaseModel):
    model_config = ConfigDict(frozen=True)

    docs: int = Field(ge=0)
    changes_per_day: float = Field(ge=0)
    mix: dict[str, float]
    """Share of each change kind (normalised to 1)."""
    model: str
    rebuilds_per_month: float = Field(default=0.0, ge=0)
    osi_ocus: float = Field(default=2.0, gt=0)
    """OpenSearch Ingestion capacity kept running (2: the high-availability minimum)."""


def parse_mix(text: str) -> dict[str, float]:
    """``content=10,metadata=50,access=50,delete=0`` → shares that sum to 1."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in KINDS:
            raise ConfigError(f"--mix: unknown change kind {name!r}; use {', '.join(KINDS)}")
        try:
            shares[name] = float(value)
        except ValueError:
            raise ConfigError(f"--mix: {name}={value!r} is not a number") from None
        if shares[name] < 0:
            raise ConfigError(f"--mix: {name} must not be negative")
    total = sum(shares.values())
    if total <= 0:
        raise ConfigError("--mix: give at least one positive share, e.g. content=1")
    return {k: shares.get(k, 0.0) / total for k in KINDS}


def load_counts(path: Path) -> dict[str, Any]:
    try:
        counts: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"measured counts {path}: {exc.strerror} (run `dynembed bench cost` to make them)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"measured counts {path} are not JSON: {exc}") from None
    if "per_change" not in counts or "per_rebuilt_item" not in counts:
        raise ConfigError(f"{path} is not the output of `dynembed bench cost`")
    return counts


def _batch(rate_per_s: float, batch_size: int, window_s: float) -> float:
    return min(float(batch_size), max(1.0, rate_per_s * window_s))


class Line(BaseModel):
    model_config = ConfigDict(frozen=True)

    item: str
    quantity: float
    unit: str
    usd: float


def _aws_line(prices: PriceTable, item: str, quantity: float, unit: str, price: str) -> Line:
    """A bill line priced from the AWS section of the price table."""
    return Line(item=item, quantity=quantity, unit=unit, usd=prices.aws_cost(price, quantity))


class MonthlyCost(BaseModel):
    model_config = ConfigDict(frozen=True)

    workload: Workload
    changes_per_month: float
    variable: list[Line]
    fixed: list[Line]
    osi: list[Line]
    rebuild_once_usd: float
    """One full rebuild of ``docs`` documents (embedding every chunk anew)."""
    opensearch_nodes: int
    total_usd: float
    osi_total_usd: float
    embedding_tokens_per_month: float
    osi_embedding_tokens_per_month: float
    counts_measured_at: str
    unverified_prices: list[str]


def monthly_cost(workload: Workload, counts: Mapping[str, Any], prices: PriceTable) -> MonthlyCost:
    from dynembed.embedders.catalog import spec_for

    spec = spec_for(workload.model)
    embedding = prices.embedding_price(workload.model)
    cpt = CHARS_PER_TOKEN
    per_change = counts["per_change"]
    memory = counts.get("lambda_memory_mb", {"classify": 512, "sync": 1024, "workflow": 1024})
    corpus = counts["corpus"]
    month = workload.changes_per_day * DAYS_PER_MONTH
    by_kind = {k: month * workload.mix.get(k, 0.0) for k in KINDS}
    per_s = workload.changes_per_day / 86_400
    stream_batch = _batch(per_s, TUNING.stream_batch_size, TUNING.stream_batching_window_s)
    content_rate = per_s * workload.mix.get("content", 0.0)
    sqs_batch = _batch(content_rate, TUNING.sqs_batch_size, TUNING.sqs_batching_window_s)

    rru = wru = bulk = chars = lambda_gb_s = 0.0
    for kind, n in by_kind.items():
        units = per_change[kind]["units"]
        rru += n * units.get("dynamodb_rru", 0.0)
        wru += n * units.get("dynamodb_wru", 0.0)
        bulk += n * units.get("opensearch_bulk_items", 0.0)
        chars += n * units.get("embedding_chars", 0.0)
        for fn in ("classify", "sync"):
            records = units.get(f"lambda_{fn}_records", 0.0)
            if records:  # duration per record as measured; a batch's fixed part is not separated
                ms_per_record = units.get(f"lambda_{fn}_ms", 0.0) / records
                lambda_gb_s += n * records * ms_per_record / 1000 * memory.get(fn, 1024) / 1024
    content = by_kind["content"]
    invocations = month / stream_batch + content / sqs_batch
    sqs_requests = (
        content / stream_batch + 2 * content / sqs_batch
    )  # send per classify batch; receive + delete
    tokens = chars / cpt

    variable = [
        _aws_line(prices, "DynamoDB reads (ledger, source, cache)", rru, "RRU", "dynamodb_rru"),
        _aws_line(prices, "DynamoDB writes (ledger, cache)", wru, "WRU", "dynamodb_wru"),
        _aws_line(prices, "SQS requests (send, receive, delete)", sqs_requests, "requests", "sqs_request"),
        _aws_line(
            prices, "Lambda invocations (classify, sync)", invocations, "invocations", "lambda_request"
        ),
        _aws_line(prices, "Lambda duration (measured locally)", lambda_gb_s, "GB-s", "lambda_gb_s"),
        Line(
            item=f"embedding ({workload.model})", quantity=tokens, unit="tokens", usd=embedding.cost(tokens)
        ),
        Line(item="OpenSearch bulk items (no per-item price)", quantity=bulk, unit="items", usd=0.0),
        Line(
            item="DynamoDB Streams reads (free for Lambda triggers)",
            quantity=month / stream_batch,
            unit="GetRecords",
            usd=0.0,
        ),
    ]

    chunks = workload.docs * float(corpus["avg_chunks_per_doc"])
    vector_gib = chunks * 1.1 * (4 * spec.dimension + 8 * HNSW_M) * (1 + REPLICAS) / GIB
    nodes = max(2, math.ceil(vector_gib / KNN_GIB_PER_NODE))
    nodes += nodes % 2  # two availability zones
    storage_gb = chunks * (4 * spec.dimension + INDEX_TEXT_BYTES_PER_CHUNK) * (1 + REPLICAS) / 1e9
    ddb_gb = (workload.docs * LEDGER_ROW_BYTES + chunks * (4 * spec.dimension + 100)) / 1e9
    fixed = [
        _aws_line(
            prices,
            f"OpenSearch domain: {nodes} × r7g.large.search",
            nodes * HOURS_PER_MONTH,
            "instance-hours",
            "opensearch_instance_hour",
        ),
        _aws_line(
            prices,
            "OpenSearch storage (vectors + fields, 1 replica)",
            storage_gb,
            "GB-month",
            "opensearch_storage_gb_month",
        ),
        _aws_line(
            prices,
            "DynamoDB storage (ledger + embedding cache)",
            ddb_gb,
            "GB-month",
            "dynamodb_storage_gb_month",
        ),
        _aws_line(
            prices,
            "SQS idle polling by the event source mapping",
            SQS_IDLE_REQUESTS_PER_MONTH,
            "requests",
            "sqs_request",
        ),
    ]

    rebuild_once = _rebuild_cost(counts, prices, workload, cpt)
    if workload.rebuilds_per_month:
        variable.append(
            Line(
                item="rebuilds",
                quantity=workload.rebuilds_per_month,
                unit="rebuilds",
                usd=workload.rebuilds_per_month * rebuild_once,
            )
        )

    doc_tokens = float(corpus["avg_doc_chars"]) / cpt
    osi_tokens = (by_kind["content"] + by_kind["metadata"] + by_kind["access"]) * doc_tokens
    osi_hours = workload.osi_ocus * HOURS_PER_MONTH
    osi = [
        _aws_line(
            prices,
            f"OpenSearch Ingestion: {workload.osi_ocus:g} OCUs always on",
            osi_hours,
            "OCU-hours",
            "osi_ocu_hour",
        ),
        Line(
            item=f"embedding every changed doc whole ({workload.model})",
            quantity=osi_tokens,
            unit="tokens",
            usd=embedding.cost(osi_tokens),
        ),
        *fixed[:2],
    ]
    total = sum(line.usd for line in variable + fixed)
    used = [
        "dynamodb_rru",
        "dynamodb_wru",
        "sqs_request",
        "lambda_request",
        "lambda_gb_s",
        "opensearch_instance_hour",
        "opensearch_storage_gb_month",
        "dynamodb_storage_gb_month",
        "osi_ocu_hour",
    ]
    unverified = [f"aws.{n}" for n in used if not prices.aws[n].verified]
    if not embedding.verified:
        unverified.insert(0, f"embedding.{workload.model}")
    return MonthlyCost(
        workload=workload,
        changes_per_month=month,
        variable=variable,
        fixed=fixed,
        osi=osi,
        rebuild_once_usd=round(rebuild_once, 2),
        opensearch_nodes=nodes,
        total_usd=round(total, 2),
        osi_total_usd=round(sum(line.usd for line in osi), 2),
        embedding_tokens_per_month=tokens,
        osi_embedding_tokens_per_month=osi_tokens,
        counts_measured_at=str(counts.get("measured_at", "?")),
        unverified_prices=unverified,
    )


def _rebuild_cost(counts: Mapping[str, Any], prices: PriceTable, workload: Workload, cpt: float) -> float:
    units = counts["per_rebuilt_item"]["units"]
    memory = counts.get("lambda_memory_mb", {}).get("workflow", 1024)
    n = workload.docs
    return (
        prices.aws_cost("dynamodb_rru", n * units.get("dynamodb_rru", 0.0))
        + prices.aws_cost("dynamodb_wru", n * units.get("dynamodb_wru", 0.0))
        + prices.aws_cost("sfn_transition", n * units.get("sfn_transitions", 0.0))
        + prices.aws_cost("lambda_gb_s", n * units.get("lambda_workflow_ms", 0.0) / 1000 * memory / 1024)
        + prices.embedding_cost(workload.model, n * units.get("embedding_chars", 0.0) / cpt)
    )
