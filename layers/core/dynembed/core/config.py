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
    """Source change (``updated_at``, else the stream record's time) → chunks written."""
    access_lag: str = "AccessLagSeconds"
    """Source change → its access patch applied to every write target (classify)."""
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
    """Stream records classify could not read (dead-lettered with their reason)."""
    malformed_items: str = "MalformedItems"
    """Source items that break the schema's attribute rules: their chunks are hidden, and the
    audit publishes the count it found as a gauge."""
    orphaned_vectors: str = "OrphanedVectors"
    stale_documents: str = "StaleDocuments"
    missing_documents: str = "MissingDocuments"
    eval_ndcg: str = "EvalNdcgAt10"
    eval_recall: str = "EvalRecallAt10"
    eval_mrr: str = "EvalMrrAt10"


METRICS = MetricNames()

# Lambda functions: name -> handler module under functions/<name>/handler.py (entry point `handler`).
FUNCTIONS: dict[str, str] = {
    "classify": "DynamoDB Streams -> decisions; access/delete applied at once, content jobs to SQS",
    "sync": "SQS reconcile jobs -> embed what changed -> OpenSearch",
    "search": "k-NN search with access filter inside the query",
    "audit": "scheduled: source vs ledger vs index; orphaned/stale/missing",
    "drain": "scheduled: enqueue held (batched-policy) jobs",
    "workflow": "rebuild workflow steps (one function, routed by the step name)",
}

REBUILD_ASL_PATH = "layers/core/dynembed/rebuild/rebuild.asl.json"
"""The rebuild state machine (Amazon States Language) with ``${WorkflowFunctionArn}`` placeholders;
CDK and the local runtime load this same file."""
