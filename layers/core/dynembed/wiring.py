"""Builds the adapters from typed settings, once per process (Lambda cold start or local run).
Handlers take a ``Services`` argument so tests can pass fakes instead of patching; every
property is typed by its port, so the domain never sees which adapter it got."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3

from dynembed.core.config import Settings, load_settings
from dynembed.core.models import Generation, ModelSpec
from dynembed.core.ports import (
    BlobStore,
    ChunkIndex,
    DeadLetters,
    Embedder,
    EmbeddingCache,
    HeldJobs,
    JobDeadLetters,
    JobQueue,
    Ledger,
    QuerySampleStore,
    Registry,
    SentinelWriter,
    SourceReader,
)
from dynembed.core.schema import SourceSchema
from dynembed.core.telemetry import Telemetry

if TYPE_CHECKING:
    from dynembed.audit.run import AuditReport
    from dynembed.query.search import SearchResponse
    from dynembed.rebuild.progress import ProgressStore
    from dynembed.sync.ingest import ChangeApplier
    from dynembed.sync.reconcile import Reconciler


def schema_from(settings: Settings) -> SourceSchema:
    """``DYNEMBED_SOURCE_SCHEMA``, or the defaults when it is unset."""
    return SourceSchema.from_json(settings.source_schema) if settings.source_schema else SourceSchema()


def telemetry_for(settings: Settings) -> Telemetry:
    """EMF to CloudWatch inside Lambda; in memory only locally, where the same figures serve
    the CLI, the demo and the benchmarks."""
    if not settings.in_lambda:
        return Telemetry()
    from dynembed.core.observability import PowertoolsMetricsSink

    return Telemetry(sink=PowertoolsMetricsSink())


class Services:
    """The process's adapters, each built on first use. ``schema`` and ``telemetry`` default to
    what ``settings`` says (the schema from ``DYNEMBED_SOURCE_SCHEMA``, EMF in Lambda)."""

    def __init__(
        self,
        settings: Settings | None = None,
        schema: SourceSchema | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.schema = schema if schema is not None else schema_from(self.settings)
        self.telemetry = telemetry if telemetry is not None else telemetry_for(self.settings)
        self._embedders: dict[str, Embedder] = {}

    @cached_property
    def sqs(self) -> Any:
        """The raw SQS client, for operator tooling (queue depth, DLQ peek and redrive)."""
        return boto3.client("sqs", region_name=self.settings.region)

    @cached_property
    def source(self) -> SourceReader:
        from dynembed.adapters.dynamodb.source import DynamoSourceReader

        return DynamoSourceReader(
            self.settings.source_table, self.schema.id_attribute, region=self.settings.region
        )

    @cached_property
    def ledger(self) -> Ledger:
        from dynembed.adapters.dynamodb.ledger import DynamoLedger

        return DynamoLedger(self.settings.ledger_table, **self._dynamodb)

    @cached_property
    def registry(self) -> Registry:
        from dynembed.adapters.dynamodb.registry import DynamoRegistry

        return DynamoRegistry(self.settings.registry_table, **self._dynamodb)

    @cached_property
    def progress(self) -> ProgressStore:
        """Backfill progress: compare-and-set on the registry item."""
        from dynembed.adapters.dynamodb.registry import DynamoProgressStore

        return DynamoProgressStore(self.settings.registry_table, **self._dynamodb)

    @cached_property
    def cache(self) -> EmbeddingCache | None:
        from dynembed.adapters.dynamodb.cache import DynamoEmbeddingCache

        return DynamoEmbeddingCache(self.settings.embedding_cache_table, **self._dynamodb)

    @cached_property
    def held(self) -> HeldJobs:
        from dynembed.adapters.dynamodb.held_jobs import DynamoHeldJobs

        return DynamoHeldJobs(self.settings.held_jobs_table, **self._dynamodb)

    @property
    def _dynamodb(self) -> dict[str, Any]:
        return {"region": self.settings.region, "host": self.settings.dynamodb_endpoint}

    @cached_property
    def queue(self) -> JobQueue:
        from dynembed.adapters.sqs import SqsJobQueue

        return SqsJobQueue(self.settings.require("jobs_queue_url"), self.sqs)

    @cached_property
    def dead_letters(self) -> DeadLetters | None:
        """Malformed stream records; None (they fail the batch instead) when no queue is set."""
        from dynembed.adapters.sqs import SqsDeadLetters

        url = self.settings.stream_failures_queue_url
        return SqsDeadLetters(url, self.sqs) if url else None

    @cached_property
    def job_dead_letters(self) -> JobDeadLetters | None:
        """Jobs out of attempts; None (SQS's redrive policy moves them, reasonless) when unset."""
        from dynembed.adapters.sqs import SqsJobDeadLetters

        url = self.settings.jobs_dlq_url
        return SqsJobDeadLetters(url, self.sqs) if url else None

    @cached_property
    def index(self) -> ChunkIndex:
        from dynembed.index.opensearch import OpenSearchChunkIndex, build_client

        client = build_client(
            self.settings.require("opensearch_endpoint"), self.settings.opensearch_auth, self.settings.region
        )
        return OpenSearchChunkIndex(client, knn_mode=self.settings.knn_mode)

    @cached_property
    def blobs(self) -> BlobStore:
        """Golden sets and evaluation reports: s3:// URIs and local paths."""
        from dynembed.adapters.blobs import UriBlobStore

        return UriBlobStore(lambda: boto3.client("s3", region_name=self.settings.region))

    @cached_property
    def query_samples(self) -> QuerySampleStore | None:
        """Sampled live queries and shadow comparisons (DynamoDB with TTL); None without a table."""
        if not self.settings.query_samples_table:
            return None
        from dynembed.adapters.samples import DynamoQuerySamples

        return DynamoQuerySamples(
            self.settings.query_samples_table,
            ttl_s=self.settings.query_sample_ttl_days * 86_400,
            resource=boto3.resource("dynamodb", region_name=self.settings.region),
        )

    @cached_property
    def shadow_queue(self) -> Any:
        if not self.settings.shadow_queue_url:
            return None
        from dynembed.adapters.sqs import SqsShadowQueue

        return SqsShadowQueue(self.settings.shadow_queue_url, self.sqs)

    @cached_property
    def query_signals(self) -> Any:
        """The search flow's ``QuerySignals``: samples live searches, shadows a building candidate."""
        store = self.query_samples
        if store is None:
            return None
        from dynembed.quality.signals import load_golden_vectors
        from dynembed.query.signals import LiveQuerySignals

        return LiveQuerySignals(
            store=store,
            registry=self.registry,
            telemetry=self.telemetry,
            golden_for=lambda gen: load_golden_vectors(gen, self.cache),
            sample_rate=self.settings.query_sample_rate,
            keep_text=self.settings.query_keep_text,
            shadow_queue=self.shadow_queue,
            shadow_rate=self.settings.shadow_sample_rate,
            cache_s=self.settings.query_signals_cache_s,
        )

    @cached_property
    def sentinel_writer(self) -> SentinelWriter:
        """The end-to-end sentinel's own items in the source table (and nothing else)."""
        from dynembed.adapters.dynamodb.sentinel import DynamoSentinelWriter

        return DynamoSentinelWriter(
            self.settings.source_table, self.schema.id_attribute, region=self.settings.region
        )

    def embedder_for(self, spec: ModelSpec) -> Embedder:
        """One embedder per model per process (models are expensive to load)."""
        if spec.model_id not in self._embedders:
            from dynembed.embedders.catalog import get_embedder

            self._embedders[spec.model_id] = get_embedder(spec.name)
        return self._embedders[spec.model_id]

    def search(self, text: str, principal: str | Sequence[str], **options: Any) -> SearchResponse:
        """``dynembed.query.search.search`` over this process's registry, index and embedders
        (``embedder_for=`` another source of them: an evaluation's ``QueryMemos``)."""
        from dynembed.query.search import search

        options.setdefault("public_principal", self.schema.public_principal)
        options.setdefault("tenant_isolation", self.schema.tenant_isolation)
        options.setdefault("signals", self.query_signals)
        options.setdefault("embedder_for", self.embedder_for)
        return search(
            text,
            principal,
            registry=self.registry,
            index=self.index,
            alias=self.settings.index_alias,
            **options,
        )

    def shadow_search(self, job: Any) -> tuple[list[str], float | None, int]:
        """Run a ``ShadowJob`` on its candidate as the original caller: (doc ranking, top score, hits)."""
        response = self.search(
            job.text,
            job.principals,
            k=job.k,
            filters=job.filters,
            tenant=job.tenant,
            generation=job.candidate,
        )
        docs = list(dict.fromkeys(r.doc_id for r in response.results))
        return docs, (response.results[0].score if response.results else None), len(response.results)

    def explain(self, doc_id: str, **options: Any) -> Any:
        """``dynembed.audit.explain.explain_document`` over this process's source, ledger, registry and index."""
        from dynembed.audit.explain import explain_document

        return explain_document(
            doc_id,
            schema=self.schema,
            source=self.source,
            ledger=self.ledger,
            registry=self.registry,
            index=self.index,
            alias=self.settings.index_alias,
            **options,
        )

    def audit(self, **options: Any) -> AuditReport:
        """``dynembed.audit.run.run_audit`` over this process's source, ledger, registry and index."""
        from dynembed.audit.run import run_audit

        return run_audit(
            schema=self.schema,
            source=self.source,
            ledger=self.ledger,
            registry=self.registry,
            index=self.index,
            telemetry=self.telemetry,
            **options,
        )

    def bootstrap(self, model_id: str, generation_id: str | None = None) -> Generation:
        """A fresh install's first generation for ``model_id`` (an active one is kept as is)."""
        from dynembed.core.models import ChunkerSpec
        from dynembed.embedders.catalog import spec_for
        from dynembed.rebuild.generations import bootstrap, new_generation

        generation = new_generation(
            spec_for(model_id), ChunkerSpec(), self.settings.index_prefix, generation_id=generation_id
        )
        return bootstrap(self.registry, self.index, self.settings.index_alias, generation)

    def reconciler(self) -> Reconciler:
        from dynembed.sync.reconcile import Reconciler

        return Reconciler(
            schema=self.schema,
            source=self.source,
            ledger=self.ledger,
            registry=self.registry,
            index=self.index,
            embedder_for=self.embedder_for,
            cache=self.cache,
            telemetry=self.telemetry,
        )

    def applier(self) -> ChangeApplier:
        from dynembed.sync.ingest import ChangeApplier

        return ChangeApplier(
            schema=self.schema,
            source=self.source,
            ledger=self.ledger,
            registry=self.registry,
            index=self.index,
            queue=self.queue,
            held=self.held,
            dead_letters=self.dead_letters,
            telemetry=self.telemetry,
        )


_services: Services | None = None


def services() -> Services:
    """The process-wide services (built at first use: the Lambda cold start)."""
    global _services
    if _services is None:
        _services = Services()
    return _services


def reset_services(new: Services | None = None) -> None:
    """Local runtime and tests: rebuild from the current environment."""
    global _services
    load_settings.cache_clear()
    _services = new
