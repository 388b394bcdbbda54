"""One source of truth for resource names, event-source tuning and alarm thresholds.

The CDK stack (``infra/``) and the local runtime (``dynembed_ops.local``) both read these, so the
two cannot drift. Lambda functions read their ``Settings`` from the environment once, at cold
start, and fail with the missing variable named.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dynembed.core.errors import ConfigError
from dynembed.cost.quota import EmbeddingQuota, SyncSizing, sync_sizing


class ResourceNames(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_table: str = "dynembed-source"
    ledger_table: str = "dynembed-ledger"
    registry_table: str = "dynembed-registry"
    embedding_cache_table: str = "dynembed-embedding-cache"
    held_jobs_table: str = "dynembed-held-jobs"
    """Batched update policy: jobs held and coalesced per doc until the drain."""
    query_samples_table: str = "dynembed-query-samples"
    """Sampled live queries and shadow comparisons, per generation, expiring by TTL."""
    jobs_queue: str = "dynembed-jobs"
    jobs_dlq: str = "dynembed-jobs-dlq"
    stream_failures_queue: str = "dynembed-stream-failures"
    shadow_queue: str = "dynembed-shadow"
    """Shadow searches of a rebuild's candidate, run off the response path."""
    shadow_dlq: str = "dynembed-shadow-dlq"
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
    held_jobs_hash: str = "doc_id"
    samples_hash: str = "pk"
    """``sample#<generation>`` or ``shadow#<candidate>``."""
    samples_range: str = "sk"
    """``<epoch ms, 15 digits>#<random>``: newest last, so a window is one Query."""
    samples_ttl: str = "expires_at"
    """Epoch seconds; DynamoDB's TTL deletes the item after it."""


class Tuning(BaseModel):
    """Event source and function settings, shared by the stack and the local pumps."""

    model_config = ConfigDict(frozen=True)

    stream_batch_size: int = 100
    stream_batching_window_s: int = 1
    stream_max_retries: int = 5
    stream_bisect_on_error: bool = True
    sqs_batching_window_s: int = 1
    sqs_max_receive_count: int = 5
    classify_timeout_s: int = 60
    sync_timeout_s: int = 120
    workflow_timeout_s: int = 900
    # The embedding quota drives the sync function's size (dynembed.cost.quota has the formula).
    embedding_requests_per_minute: int | None = 2_000
    """The account's applied Bedrock quota (Service Quotas); a planning placeholder here."""
    embedding_tokens_per_minute: int | None = 300_000
    embedding_texts_per_request: int = 1
    """Titan v2 embeds one text per InvokeModel call; Cohere v3 up to 96."""
    embedding_threads: int = 4
    """Concurrent InvokeModel calls per sync invocation (TitanEmbedder max_workers)."""
    embedding_call_latency_s: float = 0.2
    tokens_per_text: float = 250.0
    """A default chunk (1,000 characters) at 4 characters per token."""
    texts_per_job: float = 2.0
    """New texts per content job: an edit re-embeds one or two chunks (README benchmarks)."""
    sync_max_concurrency: int = 20
    """Caps concurrent bulk writers so a burst cannot overload the OpenSearch domain."""
    backfill_segments: int = 4
    backfill_page_size: int = 100
    catchup_wait_s: int = 30
    shadow_timeout_s: int = 60
    shadow_batch_size: int = 10
    shadow_max_receive_count: int = 3
    shadow_reserved_concurrency: int = 2
    """Shadow searches are a sample, not a service: keep them from competing with live search."""
    canary_rate_minutes: int = 60
    """The canary evaluates the active generation on its golden set this often."""
    canary_timeout_s: int = 900
    canary_settle_s: float = 30.0
    """Probes leave alone changes younger than this: they may still be on their way (not a fault)."""
    sentinel_rate_minutes: int = 5
    sentinel_wait_s: float = 120.0
    """How long the sentinel waits for its write to be searchable, and again for its delete to be
    gone; a wait that runs out publishes no value (the alarms treat missing data as breaching)."""
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
    def sync_sizing(self) -> SyncSizing:
        return sync_sizing(
            EmbeddingQuota(
                requests_per_minute=self.embedding_requests_per_minute,
                tokens_per_minute=self.embedding_tokens_per_minute,
                texts_per_request=self.embedding_texts_per_request,
            ),
            tokens_per_text=self.tokens_per_text,
            texts_per_job=self.texts_per_job,
            threads=self.embedding_threads,
            call_latency_s=self.embedding_call_latency_s,
            timeout_s=self.sync_timeout_s,
            max_concurrency=self.sync_max_concurrency,
        )

    @property
    def sync_reserved_concurrency(self) -> int:
        return self.sync_sizing.reserved_concurrency

    @property
    def sqs_batch_size(self) -> int:
        # One ReceiveMessage returns at most 10 messages (what a window-less mapping batches).
        return min(10, self.sync_sizing.batch_size)

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
    missing_documents: float = 0.0
    access_lag_p95_s: float = 60.0
    """Source write of an ACL/tenant change -> the patch applied to the index (p95)."""
    function_errors: float = 0.0
    """Errors of any one Lambda function in five minutes."""
    canary_max_drop: float = 0.05
    """Largest allowed fall of a canary metric below the generation's own figure at promotion."""
    canary_probe_failures: float = 0.0
    canary_latency_p95_ms: float = 2_000.0
    """The canary's latency probe: p95 of a golden query (embedding + k-NN) must stay under it."""
    sentinel_freshness_s: float = 60.0
    """A sentinel write must be searchable through the alias within this (and below the wait)."""
    sentinel_delete_s: float = 60.0
    weak_retrieval_rate: float = 0.5
    """Share of sampled live queries whose best score is under the generation's calibrated
    threshold (measured on the FAQ set: 15-24% for on-corpus traffic, 77-100% off-corpus)."""
    zero_result_rate: float = 0.2
    """Share of sampled live queries that found nothing the caller may read."""
    search_latency_p50_ms: float = 500.0
    search_latency_p95_ms: float = 1500.0
    live_min_samples: float = 20.0
    """Rate alarms judge a period only with at least this many samples (a quiet night of three
    queries, one weak, must not page)."""


class IamCaller(BaseModel):
    """What one IAM role (or user) calling the search API through IAM auth searches as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    principals: tuple[str, ...] = Field(min_length=1)
    """ACL principals, exactly as the index stores them."""
    tenant: str | None = None


NAMES = ResourceNames()
KEYS = KeySchema()
TUNING = Tuning()
THRESHOLDS = AlarmThresholds()


KnnMode = Literal["native", "exact"]
"""native: the OpenSearch k-NN plugin; exact: dynembed scores (servers without k-NN, e.g. osmem)."""
OpenSearchAuth = Literal["none", "sigv4"]
"""none (local) | sigv4 (Amazon OpenSearch Service, service 'es')."""

SETTINGS_PREFIX = "DYNEMBED_"


class Settings(BaseSettings):
    """What a function needs, from ``DYNEMBED_*`` variables, read once at cold start.

    Inside Lambda (``AWS_LAMBDA_FUNCTION_NAME`` set) every field in ``REQUIRED_IN_LAMBDA`` must be
    set, non-empty, or the cold start fails naming the variables: a function with a missing
    variable never starts and misbehaves. Outside Lambda the local runtime sets them
    (``dynembed_ops.local.stack.StackInfo.env``); one that is still missing fails where it is
    first needed, naming its variable (``require``).
    """

    model_config = SettingsConfigDict(
        env_prefix=SETTINGS_PREFIX, extra="ignore", frozen=True, populate_by_name=True
    )

    source_table: str = NAMES.source_table
    ledger_table: str = NAMES.ledger_table
    registry_table: str = NAMES.registry_table
    embedding_cache_table: str = NAMES.embedding_cache_table
    held_jobs_table: str = NAMES.held_jobs_table
    jobs_queue_url: str | None = None
    stream_failures_queue_url: str | None = None
    """Malformed stream records go here with their reason (they can never succeed)."""
    jobs_dlq_url: str | None = None
    """Jobs that failed their last allowed attempt land here with their reason."""
    max_receive_count: int = Field(default=TUNING.sqs_max_receive_count, ge=1)
    index_alias: str = NAMES.index_alias
    index_prefix: str = NAMES.index_prefix
    opensearch_endpoint: str | None = None
    opensearch_auth: OpenSearchAuth = "none"
    knn_mode: KnnMode = "native"
    region: str = "us-east-1"
    eval_dir: str | None = None
    """Folder holding golden sets (queries.jsonl + qrels.tsv) for rebuild evaluation."""
    # Live-query signals (dynembed.query.signals) and shadow searches of a rebuild's candidate.
    query_samples_table: str = NAMES.query_samples_table
    query_sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of live searches (through the alias) recorded as samples."""
    query_keep_text: bool = False
    """Keep sampled query text; otherwise only its sha256 and length (opt in: queries are user data)."""
    query_sample_ttl_days: int = Field(default=7, ge=1, le=90)
    """How long samples and shadow comparisons stay (DynamoDB TTL)."""
    shadow_queue_url: str = ""
    """Where shadow searches are enqueued; "" turns shadowing off."""
    shadow_sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of live searches also run on a rebuild's candidate while it builds (independent of
    ``query_sample_rate``)."""
    query_signals_cache_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    """How long the search path keeps the generations and the shadow candidate it read from the
    registry: a new candidate is shadowed at most this long after it starts (the local stack,
    whose registry costs nothing to read, sets 1 s)."""
    prices: str = ""
    """Price-table overrides (``dynembed.cost.prices``): a JSON object, inline or a file path."""

    # Search behind the HTTP API: which verified claims make the caller's principals (identity.py).
    identity_user_claim: str = "sub"
    """JWT claim holding the user id."""
    identity_groups_claim: str = "cognito:groups"
    """JWT claim holding the groups (a list, or a "[a b]" / "a,b" / "a b" string); "" for none."""
    identity_tenant_claim: str = "custom:tenant"
    """JWT claim holding the tenant; "" for none (then tenant isolation refuses every search)."""
    identity_user_prefix: str = ""
    """Prepended to the user id to make its ACL principal (e.g. "user:"); "" = the plain value."""
    identity_group_prefix: str = ""
    """Prepended to each group to make its ACL principal (e.g. "group:"); "" = the plain value."""
    identity_iam_callers: dict[str, IamCaller] = Field(default_factory=dict)
    """IAM-authorised callers: IAM role (or user) ARN -> the principals and tenant it searches as."""
    reports_dir: str | None = None
    """Where evaluation reports are kept: ``s3://bucket/prefix`` in AWS (required there: /tmp
    would vanish with the sandbox), a directory locally (the local stack's state folder)."""
    source_schema: str | None = None
    """The source schema as JSON (``dynembed.core.schema.SourceSchema``); defaults when unset."""

    # Set by the Lambda runtime and the local tooling, not deployed by the stack.
    lambda_function_name: str | None = Field(default=None, validation_alias="AWS_LAMBDA_FUNCTION_NAME")
    dynamodb_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL")
    )
    """boto3 honours these itself; pynamodb needs the host spelled out (moto locally)."""

    RUNTIME_FIELDS: ClassVar[frozenset[str]] = frozenset({"lambda_function_name", "dynamodb_endpoint"})
    REQUIRED_IN_LAMBDA: ClassVar[frozenset[str]] = frozenset(
        {
            "source_table",
            "ledger_table",
            "registry_table",
            "embedding_cache_table",
            "held_jobs_table",
            "jobs_queue_url",
            "stream_failures_queue_url",
            "jobs_dlq_url",
            "index_alias",
            "index_prefix",
            "opensearch_endpoint",
            "opensearch_auth",
            "knn_mode",
            "region",
            "reports_dir",
            "source_schema",
        }
    )

    @classmethod
    def deployed_fields(cls) -> list[str]:
        """The fields the stack sets on every function (``DYNEMBED_<FIELD>``)."""
        return [name for name in cls.model_fields if name not in cls.RUNTIME_FIELDS]

    @staticmethod
    def variable(field_name: str) -> str:
        return SETTINGS_PREFIX + field_name.upper()

    @property
    def in_lambda(self) -> bool:
        return bool(self.lambda_function_name)

    @model_validator(mode="after")
    def _complete_in_lambda(self) -> Settings:
        if not self.in_lambda:
            return self
        missing = sorted(
            name
            for name in self.REQUIRED_IN_LAMBDA
            if name not in self.model_fields_set or getattr(self, name) in (None, "")
        )
        if missing:
            raise ValueError(
                f"function {self.lambda_function_name} lacks "
                + ", ".join(self.variable(name) for name in missing)
            )
        if not str(self.reports_dir).startswith("s3://"):
            raise ValueError(
                f"{self.variable('reports_dir')} must be an s3:// location in Lambda, not {self.reports_dir!r}"
            )
        return self

    def require(self, field_name: str) -> str:
        """A setting that this use cannot do without, or a ConfigError naming its variable."""
        value = getattr(self, field_name)
        if value is None or value == "":
            raise ConfigError(f"{self.variable(field_name)} is not set")
        return str(value)


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            (f"{Settings.variable(str(e['loc'][0]))}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ConfigError(f"invalid environment: {problems}") from exc


class MetricNames(BaseModel):
    """Every CloudWatch metric dynembed emits, in the domain's words; ``Telemetry`` refuses any
    other name. Published with Powertools Metrics (EMF) in namespace ``NAMES.metrics_namespace``
    with the dimension ``service=NAMES.service`` (plus ``generation`` for evaluation metrics,
    ``tenant`` for cost, ``kind`` for decisions)."""

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
    chunks_patched: str = "ChunksPatched"
    version_conflicts: str = "VersionConflicts"
    decisions: str = "Decisions"
    """With dimension ``kind`` (skip/metadata/access/content/delete)."""
    malformed_records: str = "MalformedRecords"
    jobs_enqueued: str = "JobsEnqueued"
    jobs_held: str = "JobsHeld"
    """Batched update policy: jobs coalesced per doc until the drain."""
    access_patches: str = "AccessPatches"
    metadata_patches: str = "MetadataPatches"
    access_fail_closed: str = "AccessFailClosed"
    """Chunks hidden because access changed without a version bump."""
    deletes: str = "Deletes"
    stale_deletes_skipped: str = "StaleDeletesSkipped"
    source_went_back: str = "SourceWentBack"
    """A reconcile found the source at a lower version than its job: it converged to the source."""
    malformed_items: str = "MalformedItems"
    """Source items that break the schema's attribute rules: their chunks are hidden, and the
    audit publishes the count it found as a gauge."""
    orphaned_vectors: str = "OrphanedVectors"
    stale_documents: str = "StaleDocuments"
    missing_documents: str = "MissingDocuments"
    audit_freshness_lag: str = "AuditFreshnessLagSeconds"
    eval_ndcg: str = "EvalNdcgAt10"
    eval_recall: str = "EvalRecallAt10"
    eval_mrr: str = "EvalMrrAt10"
    eval_latency_p95: str = "EvalLatencyP95"
    eval_coverage: str = "EvalCoverage"
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
    """Sentinel write to searchable through the alias (a timed-out wait publishes nothing)."""
    e2e_delete: str = "EndToEndDeleteSeconds"

    def names(self) -> frozenset[str]:
        return frozenset(str(value) for value in self.model_dump().values())

    def known(self, name: str) -> bool:
        """Registered; an evaluation metric at another k keeps its name with ``At<k>``."""
        names = self.names()
        return name in names or _AT_K.sub("At10", name) in names

    weak_retrieval: str = "WeakRetrieval"
    """Per sampled live query: 1 if its best score is under the generation's threshold, else 0
    (the Average is the weak-retrieval rate; not published while the generation has none)."""
    zero_results: str = "ZeroResults"
    """Per sampled live query: 1 if it returned nothing, else 0 (Average = zero-result rate)."""
    search_latency: str = "SearchLatency"
    """Milliseconds per sampled live query (embedding + retrieval), p50/p95."""
    golden_similarity: str = "QueryGoldenSimilarity"
    """Per sampled live query: cosine similarity to its nearest golden query (Average = the
    query-drift figure; lower means live traffic strays from what the golden set covers)."""
    shadow_overlap: str = "ShadowOverlapAt10"
    """Per shadow comparison: doc overlap@10 of candidate and active."""
    query_signal_errors: str = "QuerySignalErrors"
    """A live query whose sample could not be recorded (the search itself never fails for it)."""
    shadow_searches_enqueued: str = "ShadowSearchesEnqueued"
    shadow_jobs_skipped: str = "ShadowJobsSkipped"
    """Shadow jobs not compared: the candidate is no longer building or its backfill runs."""
    shadow_jobs_malformed: str = "ShadowJobsMalformed"


_AT_K = re.compile(r"At\d+$")
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
    "shadow": "SQS shadow searches: a rebuild's candidate answers sampled live queries, compared",
}

REBUILD_ASL_PATH = "layers/core/dynembed/rebuild/rebuild.asl.json"
"""The rebuild state machine (Amazon States Language) with ``${WorkflowFunctionArn}`` placeholders;
CDK and the local runtime load this same file."""
