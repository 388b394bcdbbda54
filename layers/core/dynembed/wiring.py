"""Builds the adapters from typed settings, once per process (Lambda cold start or local run).
Handlers take a ``Services`` argument so tests can pass fakes instead of patching."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3

from dynembed.core.config import Settings, load_settings
from dynembed.core.models import ModelSpec
from dynembed.core.ports import Embedder
from dynembed.core.schema import SourceSchema
from dynembed.core.telemetry import Telemetry


class SqsDeadLetters:
    """Malformed records, with their reason, to the stream-failures queue."""

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def send(self, body: Mapping[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body, default=str))


def _metrics_sink() -> Any:
    """Powertools Metrics inside Lambda (EMF to CloudWatch); none locally, where the same
    figures stay in memory for the CLI, the demo and the benchmarks."""
    import os

    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        from dynembed.core.observability import metrics

        return metrics
    return None


@dataclass
class Services:
    settings: Settings = field(default_factory=load_settings)
    schema: SourceSchema = field(default_factory=SourceSchema.from_env)
    telemetry: Telemetry = field(default_factory=lambda: Telemetry(sink=_metrics_sink()))
    _embedders: dict[str, Embedder] = field(default_factory=dict)

    @cached_property
    def sqs(self) -> Any:
        return boto3.client("sqs", region_name=self.settings.region)

    @cached_property
    def source(self) -> Any:
        from dynembed.adapters.dynamodb import DynamoSourceReader

        return DynamoSourceReader(self.settings.source_table, self.schema.id_attribute)

    @cached_property
    def ledger(self) -> Any:
        from dynembed.adapters.dynamodb import DynamoLedger

        return DynamoLedger(self.settings.ledger_table)

    @cached_property
    def registry(self) -> Any:
        from dynembed.adapters.dynamodb import DynamoRegistry

        return DynamoRegistry(self.settings.registry_table)

    @cached_property
    def cache(self) -> Any:
        from dynembed.adapters.dynamodb import DynamoEmbeddingCache

        return DynamoEmbeddingCache(self.settings.embedding_cache_table)

    @cached_property
    def held(self) -> Any:
        from dynembed.adapters.dynamodb import DynamoHeldJobs

        return DynamoHeldJobs(self.settings.held_jobs_table)

    @cached_property
    def queue(self) -> Any:
        from dynembed.adapters.sqs import SqsJobQueue

        return SqsJobQueue(self.settings.jobs_queue_url, self.sqs)

    @cached_property
    def dead_letters(self) -> SqsDeadLetters | None:
        url = self.settings.stream_failures_queue_url
        return SqsDeadLetters(url, self.sqs) if url else None

    @cached_property
    def index(self) -> Any:
        from dynembed.index.opensearch import OpenSearchChunkIndex, build_client

        client = build_client(
            self.settings.opensearch_endpoint, self.settings.opensearch_auth, self.settings.region
        )
        return OpenSearchChunkIndex(client, knn_mode=self.settings.knn_mode)

    @cached_property
    def query_samples(self) -> Any:
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
        )

    def embedder_for(self, spec: ModelSpec) -> Embedder:
        """One embedder per model per process (models are expensive to load)."""
        if spec.model_id not in self._embedders:
            from dynembed.embedders.catalog import get_embedder

            self._embedders[spec.model_id] = get_embedder(spec.name)
        return self._embedders[spec.model_id]

    def search(self, text: str, principal: str | Sequence[str], **options: Any) -> Any:
        """``dynembed.query.search.search`` over this process's registry, index and embedders."""
        from dynembed.query.search import search

        options.setdefault("public_principal", self.schema.public_principal)
        options.setdefault("tenant_isolation", self.schema.tenant_isolation)
        options.setdefault("signals", self.query_signals)
        return search(
            text,
            principal,
            registry=self.registry,
            index=self.index,
            embedder_for=self.embedder_for,
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

    def audit(self, **options: Any) -> Any:
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

    def bootstrap(self, model_id: str, generation_id: str | None = None) -> Any:
        """A fresh install's first generation for ``model_id`` (an active one is kept as is)."""
        from dynembed.core.models import ChunkerSpec
        from dynembed.embedders.catalog import spec_for
        from dynembed.rebuild.generations import bootstrap, new_generation

        generation = new_generation(
            spec_for(model_id), ChunkerSpec(), self.settings.index_prefix, generation_id=generation_id
        )
        return bootstrap(self.registry, self.index, self.settings.index_alias, generation)

    def reconciler(self) -> Any:
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

    def applier(self) -> Any:
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
