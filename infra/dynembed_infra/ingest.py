"""Incremental sync: stream -> classify -> jobs queue -> sync, plus the drain of held jobs.

Nothing is lost (invariant I7): stream records that exhaust their retries go to the
stream-failures queue (the event source's on-failure destination); jobs that fail
``sqs_max_receive_count`` times go to the jobs DLQ. Event-source settings come from
``dynembed.core.config.TUNING``, the same numbers the local pumps use.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dynembed.core.config import NAMES, TUNING, Tuning
from dynembed.core.errors import ConfigError
from dynembed_infra import nag
from dynembed_infra.bedrock import BedrockModels
from dynembed_infra.data import Data
from dynembed_infra.functions import FunctionFactory
from dynembed_infra.search import ChunkIndex, IndexAccess

DEAD_LETTER_RETENTION = Duration.days(14)
JOBS_RETENTION = Duration.days(4)
DRAIN_TIMEOUT_S = 60
VISIBILITY_TO_TIMEOUT_RATIO = 6


def check_visibility_timeout(visibility_timeout_s: int, sync_timeout_s: int) -> None:
    """AWS's rule for SQS-triggered functions: visibility >= 6 x function timeout.

    Below it, a message becomes visible again while its first attempt still runs: the job runs
    twice and the receive count climbs towards the DLQ for work that was never failing.
    """
    required = VISIBILITY_TO_TIMEOUT_RATIO * sync_timeout_s
    if visibility_timeout_s < required:
        raise ConfigError(
            f"jobs queue visibility timeout {visibility_timeout_s}s is below {VISIBILITY_TO_TIMEOUT_RATIO} x "
            f"the sync function timeout ({sync_timeout_s}s), i.e. {required}s: messages would be "
            "redelivered while their first attempt still runs. Raise Tuning.sqs_visibility_timeout_s "
            "or lower Tuning.sync_timeout_s"
        )


class Ingest(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        data: Data,
        index: ChunkIndex,
        bedrock: BedrockModels,
        key: kms.IKey,
        tuning: Tuning = TUNING,
    ) -> None:
        super().__init__(scope, construct_id)
        check_visibility_timeout(tuning.sqs_visibility_timeout_s, tuning.sync_timeout_s)
        self._key = key

        self.jobs_dlq = self._queue("JobsDlq", NAMES.jobs_dlq, retention=DEAD_LETTER_RETENTION)
        self.jobs_queue = self._queue(
            "JobsQueue",
            NAMES.jobs_queue,
            retention=JOBS_RETENTION,
            visibility_timeout=Duration.seconds(tuning.sqs_visibility_timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=tuning.sqs_max_receive_count, queue=self.jobs_dlq
            ),
        )
        self.stream_failures_queue = self._queue(
            "StreamFailuresQueue", NAMES.stream_failures_queue, retention=DEAD_LETTER_RETENTION
        )
        nag.acknowledge(
            self.stream_failures_queue,
            "SQS3",
            "this queue is itself a dead-letter destination (the stream event source's on-failure "
            "destination); a DLQ behind it would only move the same records once more",
        )

        self.classify = functions.create(self, "classify", timeout_s=tuning.classify_timeout_s, memory_mb=512)
        self.sync = functions.create(
            self,
            "sync",
            timeout_s=tuning.sync_timeout_s,
            memory_mb=1024,
            reserved_concurrency=tuning.sync_reserved_concurrency,
        )
        # Drain only moves held jobs from a table to the queue: it never needs the VPC.
        self.drain = functions.create(self, "drain", timeout_s=DRAIN_TIMEOUT_S, memory_mb=256, in_vpc=False)

        self._wire_event_sources(data, tuning)
        self._grant(data, index, bedrock)

    def _queue(
        self,
        construct_id: str,
        name: str,
        *,
        retention: Duration,
        visibility_timeout: Duration | None = None,
        dead_letter_queue: sqs.DeadLetterQueue | None = None,
    ) -> sqs.Queue:
        return sqs.Queue(
            self,
            construct_id,
            queue_name=name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self._key,
            data_key_reuse=Duration.minutes(15),
            enforce_ssl=True,
            retention_period=retention,
            visibility_timeout=visibility_timeout,
            dead_letter_queue=dead_letter_queue,
        )

    def _wire_event_sources(self, data: Data, tuning: Tuning) -> None:
        self.stream_source = sources.DynamoEventSource(
            data.source_table,
            # From the oldest record the stream still holds: changes made before the first
            # deployment of the mapping are indexed too.
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=tuning.stream_batch_size,
            max_batching_window=Duration.seconds(tuning.stream_batching_window_s),
            bisect_batch_on_error=tuning.stream_bisect_on_error,
            report_batch_item_failures=True,
            retry_attempts=tuning.stream_max_retries,
            on_failure=sources.SqsDlq(self.stream_failures_queue),
        )
        self.classify.function.add_event_source(self.stream_source)
        self.jobs_source = sources.SqsEventSource(
            self.jobs_queue,
            batch_size=tuning.sqs_batch_size,
            max_batching_window=Duration.seconds(tuning.sqs_batching_window_s),
            report_batch_item_failures=True,
            # Never poll more than the reserved concurrency can run: throttled batches would
            # burn receive counts and reach the DLQ without ever failing.
            max_concurrency=max(2, tuning.sync_reserved_concurrency),
        )
        self.sync.function.add_event_source(self.jobs_source)

    def _grant(self, data: Data, index: ChunkIndex, bedrock: BedrockModels) -> None:
        classify, sync, drain = self.classify, self.sync, self.drain
        # classify: consistent get of the current item, patch ledger rows and chunks in every
        # write-target generation (registry), hold or enqueue content jobs, park bad records.
        data.source_table.grant_read_data(classify.role)
        data.ledger_table.grant_read_write_data(classify.role)
        data.registry_table.grant_read_data(classify.role)
        data.held_jobs_table.grant_read_write_data(classify.role)
        self.jobs_queue.grant_send_messages(classify.role)
        self.stream_failures_queue.grant_send_messages(classify.role)
        index.grant(classify, IndexAccess.WRITE)
        # sync: reconcile one doc in one generation.
        data.source_table.grant_read_data(sync.role)
        data.ledger_table.grant_read_write_data(sync.role)
        data.embedding_cache_table.grant_read_write_data(sync.role)
        data.registry_table.grant_read_data(sync.role)
        self.jobs_dlq.grant_send_messages(sync.role)
        index.grant(sync, IndexAccess.WRITE)
        bedrock.grant_invoke(sync)
        # drain: move due held jobs to the queue.
        data.held_jobs_table.grant_read_write_data(drain.role)
        self.jobs_queue.grant_send_messages(drain.role)
