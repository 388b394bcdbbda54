"""Live traffic: what the search function records of sampled queries, and the shadow searches
of a rebuild's candidate (the shadow queue, its DLQ and the shadow function).

The search function writes samples to the query-samples table, reads the golden query
embeddings from the embedding cache, and enqueues shadow jobs; the shadow function runs them on
the candidate (read-only on the index, like search) and records the comparisons; the workflow
function reads them into the rebuild report. Shadow jobs are samples, not work that must be
done: a few retries, then the DLQ keeps them for inspection, and the function's reserved
concurrency keeps shadow searches from competing with live ones.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dynembed.core.config import NAMES, TUNING, Tuning
from dynembed_infra.bedrock import BedrockModels
from dynembed_infra.data import Data
from dynembed_infra.functions import DynembedFunction, FunctionFactory
from dynembed_infra.search import ChunkIndex, IndexAccess

SHADOW_RETENTION = Duration.hours(1)
"""A shadow job older than this compares a candidate that may have moved on: let it expire."""
SHADOW_DLQ_RETENTION = Duration.days(4)
SHADOW_MEMORY_MB = 1024


class LiveTraffic(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        data: Data,
        index: ChunkIndex,
        bedrock: BedrockModels,
        search: DynembedFunction,
        workflow: DynembedFunction,
        key: kms.IKey,
        tuning: Tuning = TUNING,
    ) -> None:
        super().__init__(scope, construct_id)
        self.shadow_dlq = self._queue("ShadowDlq", NAMES.shadow_dlq, SHADOW_DLQ_RETENTION, key)
        self.shadow_queue = self._queue(
            "ShadowQueue",
            NAMES.shadow_queue,
            SHADOW_RETENTION,
            key,
            visibility_timeout=Duration.seconds(6 * tuning.shadow_timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=tuning.shadow_max_receive_count, queue=self.shadow_dlq
            ),
        )
        self.shadow = functions.create(
            self,
            "shadow",
            timeout_s=tuning.shadow_timeout_s,
            memory_mb=SHADOW_MEMORY_MB,
            reserved_concurrency=tuning.shadow_reserved_concurrency,
        )
        self.shadow.function.add_event_source(
            sources.SqsEventSource(
                self.shadow_queue,
                batch_size=tuning.shadow_batch_size,
                report_batch_item_failures=True,
                max_concurrency=max(2, tuning.shadow_reserved_concurrency),
            )
        )
        samples = data.query_samples_table
        # search: sample live queries (write), golden query embeddings (read), shadow jobs (send).
        samples.grant(search.role, "dynamodb:PutItem")
        key.grant_encrypt_decrypt(search.role)
        data.embedding_cache_table.grant_read_data(search.role)
        self.shadow_queue.grant_send_messages(search.role)
        # shadow: the candidate (registry, index read-only, query embedding), the comparison.
        data.registry_table.grant_read_data(self.shadow.role)
        index.grant(self.shadow, IndexAccess.READ)
        bedrock.grant_invoke(self.shadow)
        samples.grant(self.shadow.role, "dynamodb:PutItem")
        key.grant_encrypt_decrypt(self.shadow.role)
        # workflow: the evaluate step folds the comparisons into the rebuild report.
        samples.grant_read_data(workflow.role)

    def _queue(
        self,
        construct_id: str,
        name: str,
        retention: Duration,
        key: kms.IKey,
        *,
        visibility_timeout: Duration | None = None,
        dead_letter_queue: sqs.DeadLetterQueue | None = None,
    ) -> sqs.Queue:
        return sqs.Queue(
            self,
            construct_id,
            queue_name=name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            data_key_reuse=Duration.minutes(15),
            enforce_ssl=True,
            retention_period=retention,
            visibility_timeout=visibility_timeout,
            dead_letter_queue=dead_letter_queue,
        )
