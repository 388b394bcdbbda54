"""The scheduled audit and the two EventBridge schedules (audit, drain)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dynembed.core.config import NAMES
from dynembed_infra.data import Data
from dynembed_infra.functions import DynembedFunction, FunctionFactory
from dynembed_infra.search import ChunkIndex, IndexAccess

AUDIT_TIMEOUT_S = 900
"""A full source/ledger/index comparison scans everything: give it Lambda's maximum."""
DRAIN_RATE = Duration.minutes(1)


class Audit(Construct):
    """Compares source, ledger and index; publishes orphaned/stale/missing; enqueues repairs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        data: Data,
        index: ChunkIndex,
        jobs_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = functions.create(self, "audit", timeout_s=AUDIT_TIMEOUT_S, memory_mb=1024)
        fn = self.function
        data.source_table.grant_read_data(fn.role)
        data.ledger_table.grant_read_data(fn.role)
        data.registry_table.grant_read_data(fn.role)
        jobs_queue.grant_send_messages(fn.role)
        index.grant(fn, IndexAccess.SCAN)  # read-only: repairs are enqueued, strays never deleted


class Schedules(Construct):
    """EventBridge rules: the audit at the configured rate, the drain every minute."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        audit: DynembedFunction,
        drain: DynembedFunction,
        audit_rate_minutes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.audit_rule = events.Rule(
            self,
            "AuditSchedule",
            rule_name=f"{NAMES.service}-audit",
            description="dynembed audit: source vs ledger vs index",
            schedule=events.Schedule.rate(Duration.minutes(audit_rate_minutes)),
            targets=[
                targets.LambdaFunction(audit.function, retry_attempts=2, max_event_age=Duration.hours(1))
            ],
        )
        self.drain_rule = events.Rule(
            self,
            "DrainSchedule",
            rule_name=f"{NAMES.service}-drain",
            description="dynembed drain: enqueue held (batched-policy) jobs that are due",
            schedule=events.Schedule.rate(DRAIN_RATE),
            # A missed minute is caught by the next one: no retries piling up behind it.
            targets=[
                targets.LambdaFunction(drain.function, retry_attempts=0, max_event_age=Duration.minutes(2))
            ],
        )
