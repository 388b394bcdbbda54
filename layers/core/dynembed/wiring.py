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
    def metrics_publisher(self) -> Any:
        """PutMetricData, for the monitors' figures (dimensions of their own, readable locally)."""
        from dynembed.adapters.cloudwatch import CloudWatchMetrics

        return CloudWatchMetrics(region=self.settings.region)

    @cached_property
    def sentinel_writer(self) -> Any:
        from dynembed.adapters.dynamodb import DynamoSentinelWriter

        return DynamoSentinelWriter(self.settings.source_table, self.schema.id_attribute)

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
        return search(
            text,
            principal,
            registry=self.registry,
            index=self.index,
            embedder_for=self.embedder_for,
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
