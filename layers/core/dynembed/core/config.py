"""One source of truth for resource names, event-source tuning and alarm thresholds.

The CDK stack (``infra/``) and the local runtime (``dynembed_ops.local``) both read these, so the
two cannot drift. Lambda functions read their ``Settings`` from the environment once, at cold
start, and fail with the missing variable named.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from dynembed.core.errors import ConfigError


class ResourceNames(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_table: str = "dynembed-source"
    ledger_table: str = "dynembed-ledger"
    registry_table: str = "dynembed-registry"
    embedding_cache_table: str = "dynembed-embedding-cache"
    held_jobs_table: str = "dynembed-held-jobs"
    """Batched update policy: jobs held and coalesced per doc until the drain."""
    jobs_queue: str = "dynembed-jobs"
    jobs_dlq: str = "dynembed-jobs-dlq"
    stream_failures_queue: str = "dynembed-stream-failures"
    """On-failure destination of the stream event source: records that exhausted retries."""
    index_alias: str = "dynembed-chunks"
    index_prefix: str = "dynembed-chunks"
    rebuild_state_machine: str = "dynembed-rebuild"
    metrics_namespace: str = "dynembed"
    service: str = "dynembed"


class KeySchema(BaseModel):
    """Key attributes of the tables dynembed owns (the source table's id comes from the schema)."""

    model_config = ConfigDict(frozen=True)

    ledger_hash: str = "doc_id"
    ledger_range: str = "generation"
    registry_hash: str = "generation_id"
    cache_hash: str = "cache_key"


class Tuning(BaseModel):
    """Event source and function settings, shared by the stack and the local pumps."""

    model_config = ConfigDict(frozen=True)

    stream_batch_size: int = 100
    stream_batching_window_s: int = 1
    stream_max_retries: int = 5
    stream_bisect_on_error: bool = True
    sqs_batch_size: int = 10
    sqs_batching_window_s: int = 1
    sqs_max_receive_count: int = 5
    classify_timeout_s: int = 60
    sync_timeout_s: int = 120
    workflow_timeout_s: int = 900
    sync_reserved_concurrency: int = 10
    """Caps concurrent bulk writers so a burst cannot overload the OpenSearch domain."""
    backfill_segments: int = 4
    backfill_page_size: int = 100
    catchup_wait_s: int = 30
    canary_rate_minutes: int = 60
    """The canary evaluates the active generation on its golden set this often."""
    canary_timeout_s: int = 900
    canary_settle_s: float = 30.0
    """Probes leave alone changes younger than this: they may still be on their way (not a fault)."""
    sentinel_rate_minutes: int = 5
    sentinel_wait_s: float = 120.0
    """How long the sentinel waits for its write to be searchable, and again for its delete to be
    gone; past it the run records the wait as a lower bound (which breaches the alarm)."""
    sentinel_poll_s: float = 1.0
    sentinel_alarm_periods: int = 2
    """The end-to-end alarms fire after this many sentinel periods in a row breach (or miss)."""

    @property
    def sentinel_alarm_period_s(self) -> int:
        return 60 * self.sentinel_rate_minutes

    @property
    def canary_alarm_period_s(self) -> int:
        """Two canary intervals, so one late run is not a missing one; past an hour CloudWatch
        wants whole hours."""
        period = 2 * 60 * self.canary_rate_minutes
        return period if period <= 3600 else -(-period // 3600) * 3600

    @property
    def sentinel_timeout_s(self) -> int:
        # Both waits plus the writes and one cold start; shorter than the rate, so runs never overlap.
        return int(2 * self.sentinel_wait_s + 30)

    @property
    def sqs_visibility_timeout_s(self) -> int:
        # AWS's guidance: at least 6x the function timeout, so retries never overlap.
        return 6 * self.sync_timeout_s


class AlarmThresholds(BaseModel):
    model_config = ConfigDict(frozen=True)

    freshness_p95_s: float = 300.0
    oldest_job_age_s: float = 900.0
    dlq_messages: float = 0.0
    orphaned_vectors: float = 0.0
    stale_documents: float = 10.0
    embedding_failures: float = 0.0
    stream_iterator_age_ms: float = 60_000.0
    canary_max_drop: float = 0.05
    """Largest allowed fall of a canary metric below the generation's own figure at promotion."""
    canary_probe_failures: float = 0.0
    canary_latency_p95_ms: float = 2_000.0
    """The canary's latency probe: p95 of a golden query (embedding + k-NN) must stay under it."""
    sentinel_freshness_s: float = 60.0
    """A sentinel write must be searchable through the alias within this (and below the wait)."""
    sentinel_delete_s: float = 60.0


NAMES = ResourceNames()
KEYS = KeySchema()
TUNING = Tuning()
THRESHOLDS = AlarmThresholds()


class Settings(BaseSettings):
    """What a Lambda function needs, from ``DYNEMBED_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="DYNEMBED_", extra="ignore", frozen=True)

    source_table: str = NAMES.source_table
    ledger_table: str = NAMES.ledger_table
    registry_table: str = NAMES.registry_table
    embedding_cache_table: str = NAMES.embedding_cache_table
    held_jobs_table: str = NAMES.held_jobs_table
    jobs_queue_url: str = ""
    stream_failures_queue_url: str = ""
    """Malformed stream records go here with their reason (they can never succeed)."""
    jobs_dlq_url: str = ""
    """Jobs that failed their last allowed attempt land here with their reason."""
    max_receive_count: int = TUNING.sqs_max_receive_count
    index_alias: str = NAMES.index_alias
    index_prefix: str = NAMES.index_prefix
    opensearch_endpoint: str = "http://127.0.0.1:9200"
    opensearch_auth: str = "none"
    """none | sigv4 (Amazon OpenSearch Service, service 'es')."""
    knn_mode: str = "native"
    """native (OpenSearch k-NN plugin) | exact (dynembed scores, for servers without k-NN)."""
    region: str = "us-east-1"
    eval_dir: str = ""
    """Folder holding golden sets (queries.jsonl + qrels.tsv) for rebuild evaluation."""


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        fields = ", ".join("DYNEMBED_" + str(e["loc"][0]).upper() for e in exc.errors())
        raise ConfigError(f"invalid environment: {fields}: {exc.errors()[0]['msg']}") from exc


class MetricNames(BaseModel):
    """CloudWatch metric names, in the domain's words. Published with Powertools Metrics in
    namespace ``NAMES.metrics_namespace`` with the single dimension ``service=NAMES.service``
    (plus ``generation`` for evaluation metrics, ``tenant`` for cost)."""

    model_config = ConfigDict(frozen=True)

    freshness_lag: str = "FreshnessLagSeconds"
    embeddings_computed: str = "EmbeddingsComputed"
    embeddings_skipped: str = "EmbeddingsSkipped"
    embedded_characters: str = "EmbeddedCharacters"
    embedding_failures: str = "EmbeddingFailures"
    chunks_written: str = "ChunksWritten"
    chunks_deleted: str = "ChunksDeleted"
    version_conflicts: str = "VersionConflicts"
    decisions: str = "Decisions"
    """With dimension ``kind`` (skip/metadata/access/content/delete)."""
    malformed_records: str = "MalformedRecords"
    orphaned_vectors: str = "OrphanedVectors"
    stale_documents: str = "StaleDocuments"
    missing_documents: str = "MissingDocuments"
    eval_ndcg: str = "EvalNdcgAt10"
    eval_recall: str = "EvalRecallAt10"
    eval_mrr: str = "EvalMrrAt10"
    canary_ndcg: str = "CanaryNdcg"
    canary_recall: str = "CanaryRecall"
    canary_mrr: str = "CanaryMrr"
    """Canary metrics at the generation's own k, with dimension ``generation``."""
    canary_ndcg_drop: str = "CanaryNdcgDrop"
    canary_recall_drop: str = "CanaryRecallDrop"
    canary_mrr_drop: str = "CanaryMrrDrop"
    """Figure at promotion minus the canary's: by ``generation``, and under ``service`` alone for the
    alarms (whichever generation is active)."""
    canary_probe_failures: str = "CanaryProbeFailures"
    canary_latency_p95: str = "CanaryLatencyP95"
    e2e_freshness: str = "EndToEndFreshnessSeconds"
    """Sentinel write to searchable through the alias; on a timeout, the wait (a lower bound)."""
    e2e_delete: str = "EndToEndDeleteSeconds"


METRICS = MetricNames()

# Lambda functions: name -> handler module under functions/<name>/handler.py (entry point `handler`).
FUNCTIONS: dict[str, str] = {
    "classify": "DynamoDB Streams -> decisions; access/delete applied at once, content jobs to SQS",
    "sync": "SQS reconcile jobs -> embed what changed -> OpenSearch",
    "search": "k-NN search with access filter inside the query",
    "audit": "scheduled: source vs ledger vs index; orphaned/stale/missing",
    "drain": "scheduled: enqueue held (batched-policy) jobs",
    "workflow": "rebuild workflow steps (one function, routed by the step name)",
    "canary": "scheduled: the active generation on its golden set and probes, against its promotion figures",
    "sentinel": "scheduled: a sentinel write and delete, timed until searchable and gone",
}

REBUILD_ASL_PATH = "layers/core/dynembed/rebuild/rebuild.asl.json"
"""The rebuild state machine (Amazon States Language) with ``${WorkflowFunctionArn}`` placeholders;
CDK and the local runtime load this same file."""
