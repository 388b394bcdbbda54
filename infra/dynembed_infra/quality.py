"""The quality monitors: the canary and the end-to-end sentinel, their schedules and alarms.

Both run on EventBridge schedules at the rates in ``dynembed.core.config.TUNING`` (the local
stack runs them at the same rates). Their alarms watch figures that have a static threshold
whatever the generation (the canary publishes *drops* from the generation's figures at
promotion), and treat missing data as breaching: a monitor that stops publishing, or a
sentinel that never sees its write, is itself the failure to report. Each alarm's description
points at its runbook entry in docs/operations.md.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from dynembed.core.config import METRICS, NAMES, THRESHOLDS, TUNING, Tuning
from dynembed.core.models import SENTINEL_ID_PREFIX
from dynembed_infra.bedrock import BedrockModels
from dynembed_infra.context import DeploymentConfig
from dynembed_infra.data import Data
from dynembed_infra.functions import DynembedFunction, FunctionFactory
from dynembed_infra.monitoring import AlarmSpec, create_alarms, errors_alarm_spec
from dynembed_infra.search import ChunkIndex, IndexAccess
from dynembed_infra.workflow import grant_golden_sets

CANARY_MEMORY_MB = 1024
SENTINEL_MEMORY_MB = 512


class QualityMonitors(Construct):
    """The canary and sentinel functions with their roles, schedules and alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        data: Data,
        index: ChunkIndex,
        bedrock: BedrockModels,
        topic: sns.ITopic,
        config: DeploymentConfig,
        tuning: Tuning = TUNING,
    ) -> None:
        super().__init__(scope, construct_id)
        self.canary = self._canary(functions, data, index, bedrock, config, tuning)
        self.sentinel = self._sentinel(functions, data, index, bedrock, tuning)
        # A missed run shows as missing data (the alarms breach): no retries piling up.
        self.canary_rule = self._schedule(
            "CanarySchedule",
            "canary",
            "dynembed canary: the active generation on its golden set, against its promotion figures",
            tuning.canary_rate_minutes,
            self.canary,
            max_event_age=Duration.hours(1),
        )
        # Never two runs at once: they share the sentinel's one item.
        self.sentinel_rule = self._schedule(
            "SentinelSchedule",
            "sentinel",
            "dynembed sentinel: a write and a delete timed through the whole pipeline",
            tuning.sentinel_rate_minutes,
            self.sentinel,
            max_event_age=Duration.minutes(2),
        )
        self.specs = _alarm_specs(tuning)
        self.alarms = create_alarms(self, self.specs, topic)
        # Created after the stack's Monitoring, so their Errors alarms live here.
        self.alarms.update(
            create_alarms(self, [errors_alarm_spec(self.canary), errors_alarm_spec(self.sentinel)], topic)
        )

    def _schedule(
        self,
        construct_id: str,
        name: str,
        description: str,
        rate_minutes: int,
        fn: DynembedFunction,
        *,
        max_event_age: Duration,
    ) -> events.Rule:
        """EventBridge runs ``fn`` every ``rate_minutes``, once per event (no retries)."""
        return events.Rule(
            self,
            construct_id,
            rule_name=f"{NAMES.service}-{name}",
            description=description,
            schedule=events.Schedule.rate(Duration.minutes(rate_minutes)),
            targets=[targets.LambdaFunction(fn.function, retry_attempts=0, max_event_age=max_event_age)],
        )

    def add_to_dashboard(self, dashboard: cw.Dashboard) -> None:
        dashboard.add_widgets(
            cw.AlarmStatusWidget(
                title="dynembed quality monitors", alarms=list(self.alarms.values()), width=24
            )
        )
        dashboard.add_widgets(
            *(
                cw.AlarmWidget(title=spec.title, alarm=self.alarms[spec.slug], width=8, height=6)
                for spec in self.specs
            )
        )

    def _canary(
        self,
        functions: FunctionFactory,
        data: Data,
        index: ChunkIndex,
        bedrock: BedrockModels,
        config: DeploymentConfig,
        tuning: Tuning,
    ) -> DynembedFunction:
        fn = functions.create(self, "canary", timeout_s=tuning.canary_timeout_s, memory_mb=CANARY_MEMORY_MB)
        # Reads what the probes read; writes only its report onto the generation (UpdateItem).
        # Figures go out as EMF through its logs, like every function's.
        data.registry_table.grant_read_data(fn.role)
        data.registry_table.grant(fn.role, "dynamodb:UpdateItem")
        data.source_table.grant_read_data(fn.role)
        data.ledger_table.grant_read_data(fn.role)
        # The probes refresh the index and scroll through it, like the audit; no document write.
        index.grant(fn, IndexAccess.SCAN)
        bedrock.grant_invoke(fn)
        grant_golden_sets(self, fn, config)
        return fn

    def _sentinel(
        self,
        functions: FunctionFactory,
        data: Data,
        index: ChunkIndex,
        bedrock: BedrockModels,
        tuning: Tuning,
    ) -> DynembedFunction:
        fn = functions.create(
            self, "sentinel", timeout_s=tuning.sentinel_timeout_s, memory_mb=SENTINEL_MEMORY_MB
        )
        # Its own item only: the partition key must start with the sentinel prefix.
        fn.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem", "dynamodb:DeleteItem"],
                resources=[data.source_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{SENTINEL_ID_PREFIX}*"]}},
            )
        )
        if data.source_table.encryption_key is not None:
            data.source_table.encryption_key.grant_encrypt_decrypt(fn.role)
        # Searches through the alias like the search function: the registry, the query embedding.
        data.registry_table.grant_read_data(fn.role)
        index.grant(fn, IndexAccess.READ)
        bedrock.grant_invoke(fn)
        return fn


def _alarm_specs(tuning: Tuning) -> list[AlarmSpec]:
    canary_period = Duration.seconds(tuning.canary_alarm_period_s)
    sentinel_period = Duration.seconds(tuning.sentinel_alarm_period_s)
    breaching = cw.TreatMissingData.BREACHING
    drops = [
        AlarmSpec(
            f"canary-{name}-drop",
            f"Canary {label} drop since promotion",
            _metric(metric, canary_period),
            THRESHOLDS.canary_max_drop,
            f"the serving generation's {label} fell below its figure at promotion by more than the margin"
            " (or the canary stopped reporting)",
            missing=breaching,
        )
        for name, label, metric in (
            ("ndcg", "nDCG", METRICS.canary_ndcg_drop),
            ("recall", "Recall", METRICS.canary_recall_drop),
            ("mrr", "MRR", METRICS.canary_mrr_drop),
        )
    ]
    return [
        *drops,
        AlarmSpec(
            "canary-probe-failures",
            "Canary probes failed",
            _metric(METRICS.canary_probe_failures, canary_period),
            THRESHOLDS.canary_probe_failures,
            "a canary probe failed on the serving generation: deleted docs found, newest edits missing,"
            " a restricted principal seeing non-public chunks, docs missing, or slow queries"
            " (or the canary stopped reporting)",
            missing=breaching,
        ),
        AlarmSpec(
            "end-to-end-freshness",
            "Sentinel write to searchable (s)",
            _metric(METRICS.e2e_freshness, sentinel_period),
            THRESHOLDS.sentinel_freshness_s,
            "the sentinel's write took too long to become searchable, or never did: the stream, classify,"
            " the queue, sync or the index has stalled (or the sentinel stopped running)",
            evaluation_periods=tuning.sentinel_alarm_periods,
            missing=breaching,
        ),
        AlarmSpec(
            "end-to-end-delete",
            "Sentinel delete to gone (s)",
            _metric(METRICS.e2e_delete, sentinel_period),
            THRESHOLDS.sentinel_delete_s,
            "the sentinel's delete took too long to leave the index, or never did (or the sentinel stopped"
            " running)",
            evaluation_periods=tuning.sentinel_alarm_periods,
            missing=breaching,
        ),
    ]


def _metric(name: str, period: Duration) -> cw.Metric:
    """The service dimension alone: whichever generation is active (the by-generation series
    are for graphs)."""
    return cw.Metric(
        namespace=NAMES.metrics_namespace,
        metric_name=name,
        dimensions_map={"service": NAMES.service},
        statistic="Maximum",
        period=period,
    )
