"""Alarms on the figures that say dynembed is healthy, one SNS topic, one dashboard.

Thresholds come from ``dynembed.core.config.THRESHOLDS`` and metric names from ``METRICS`` (namespace
``NAMES.metrics_namespace``, dimension ``service``), the names the functions publish with
Powertools. Each alarm's description points at its runbook entry in docs/operations.md.

The safety net stays loud: the audit's alarms and the freshness alarm treat missing data as
breaching, since an audit that stopped running, or a pipeline that stopped indexing, publishes
nothing at all. Every function has an Errors alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dynembed.core.config import METRICS, NAMES, THRESHOLDS
from dynembed_infra.functions import DynembedFunction

RUNBOOK = "docs/operations.md#alarm-runbook"
SHORT_PERIOD = Duration.minutes(5)
REBUILD_FAILURES_THRESHOLD = 0.0
"""Any failed rebuild execution (THRESHOLDS has no entry: there is no acceptable number)."""
AUDIT_EVALUATION_PERIODS = 2
"""Audit alarms judge two audit periods: one period can hold no datapoint when a run's end
drifts across a period boundary, which must not page; two in a row (no audit, or a finding that
persists) must. CloudWatch judges at most one day, so a daily audit gets one period."""
MAX_EVALUATION_MINUTES = 1440


@dataclass(frozen=True)
class AlarmSpec:
    slug: str
    title: str
    metric: cw.IMetric
    threshold: float
    meaning: str
    evaluation_periods: int = 1
    missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING


def errors_alarm_spec(fn: DynembedFunction) -> AlarmSpec:
    """Every function has one: a failure the function did not handle itself."""
    return AlarmSpec(
        f"{fn.name}-errors",
        f"{fn.function_name} errors",
        fn.function.metric_errors(statistic="Sum", period=SHORT_PERIOD),
        THRESHOLDS.function_errors,
        f"{fn.function_name} invocations failed (an unhandled error, a timeout or out of memory)",
    )


def create_alarms(scope: Construct, specs: Sequence[AlarmSpec], topic: sns.ITopic) -> dict[str, cw.Alarm]:
    """One alarm per spec (``dynembed-<slug>``, its runbook row named), notifying ``topic`` on
    alarm and on recovery."""
    action = cw_actions.SnsAction(topic)
    alarms: dict[str, cw.Alarm] = {}
    for spec in specs:
        alarm = cw.Alarm(
            scope,
            "".join(part.capitalize() for part in spec.slug.split("-")) + "Alarm",
            alarm_name=f"{NAMES.service}-{spec.slug}",
            alarm_description=f"{spec.meaning}. Runbook: {RUNBOOK} ({spec.slug})",
            metric=spec.metric,
            threshold=spec.threshold,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.evaluation_periods,
            treat_missing_data=spec.missing,
        )
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        alarms[spec.slug] = alarm
    return alarms


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        jobs_queue: sqs.IQueue,
        jobs_dlq: sqs.IQueue,
        stream_failures_queue: sqs.IQueue,
        classify: DynembedFunction,
        functions: list[DynembedFunction],
        state_machine: sfn.IStateMachine,
        audit_rate_minutes: int,
        alarm_email: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"{NAMES.service}-alarms",
            display_name="dynembed alarms",
            master_key=key,
            enforce_ssl=True,
        )
        # The topic policy (written for enforce_ssl) replaces SNS's default one: name the
        # publisher explicitly.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))

        audit_period = Duration.minutes(audit_rate_minutes)
        audit_periods = (
            AUDIT_EVALUATION_PERIODS
            if AUDIT_EVALUATION_PERIODS * audit_rate_minutes <= MAX_EVALUATION_MINUTES
            else 1
        )
        specs = [
            AlarmSpec(
                "freshness-lag-p95",
                "Freshness lag p95 (s)",
                _domain_metric(METRICS.freshness_lag, "p95", SHORT_PERIOD),
                THRESHOLDS.freshness_p95_s,
                "changes take too long to reach the index, or none reached it for 15 minutes",
                evaluation_periods=3,
                missing=cw.TreatMissingData.BREACHING,
            ),
            AlarmSpec(
                "access-lag-p95",
                "Access lag p95 (s)",
                _domain_metric(METRICS.access_lag, "p95", SHORT_PERIOD),
                THRESHOLDS.access_lag_p95_s,
                "ACL or tenant changes take too long to reach the index (readers keep stale access)",
                evaluation_periods=2,
            ),
            AlarmSpec(
                "weak-retrieval-rate",
                "Weak retrieval rate (sampled live queries)",
                _sampled_rate(METRICS.weak_retrieval, "weak"),
                THRESHOLDS.weak_retrieval_rate,
                "live queries find less and less the generation answers well: their best score falls "
                "under its calibrated threshold (traffic drifted from the corpus, or retrieval broke)",
                evaluation_periods=3,
            ),
            AlarmSpec(
                "zero-result-rate",
                "Zero-result rate (sampled live queries)",
                _sampled_rate(METRICS.zero_results, "zero"),
                THRESHOLDS.zero_result_rate,
                "live queries find nothing the caller may read (access, tenant or an emptied index)",
                evaluation_periods=3,
            ),
            AlarmSpec(
                "search-latency-p50",
                "Search latency p50 (ms)",
                _domain_metric(METRICS.search_latency, "p50", SHORT_PERIOD),
                THRESHOLDS.search_latency_p50_ms,
                "typical searches got slow (query embedding or k-NN)",
                evaluation_periods=3,
            ),
            AlarmSpec(
                "search-latency-p95",
                "Search latency p95 (ms)",
                _domain_metric(METRICS.search_latency, "p95", SHORT_PERIOD),
                THRESHOLDS.search_latency_p95_ms,
                "the slowest searches got slower (query embedding or k-NN)",
                evaluation_periods=3,
            ),
            AlarmSpec(
                "oldest-job-age",
                "Oldest reconcile job (s)",
                jobs_queue.metric_approximate_age_of_oldest_message(statistic="Maximum", period=SHORT_PERIOD),
                THRESHOLDS.oldest_job_age_s,
                "reconcile jobs wait in the queue: sync is failing, throttled or too slow",
            ),
            AlarmSpec(
                "jobs-dlq-messages",
                "Jobs in the DLQ",
                jobs_dlq.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=SHORT_PERIOD
                ),
                THRESHOLDS.dlq_messages,
                "reconcile jobs exhausted their retries",
            ),
            AlarmSpec(
                "stream-failures-messages",
                "Stream records parked",
                stream_failures_queue.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=SHORT_PERIOD
                ),
                THRESHOLDS.dlq_messages,
                "stream records could not be classified (malformed or retries exhausted)",
            ),
            AlarmSpec(
                "orphaned-vectors",
                "Orphaned vectors",
                _domain_metric(METRICS.orphaned_vectors, "Maximum", audit_period),
                THRESHOLDS.orphaned_vectors,
                "the index holds chunks of docs the source no longer has (deletes were missed), "
                "or the audit stopped reporting",
                evaluation_periods=audit_periods,
                missing=cw.TreatMissingData.BREACHING,
            ),
            AlarmSpec(
                "stale-documents",
                "Stale documents",
                _domain_metric(METRICS.stale_documents, "Maximum", audit_period),
                THRESHOLDS.stale_documents,
                "indexed versions lag the source versions, or the audit stopped reporting",
                evaluation_periods=audit_periods,
                missing=cw.TreatMissingData.BREACHING,
            ),
            AlarmSpec(
                "missing-documents",
                "Missing documents",
                _domain_metric(METRICS.missing_documents, "Maximum", audit_period),
                THRESHOLDS.missing_documents,
                "live docs with content have no chunk in the index, or the audit stopped reporting",
                evaluation_periods=audit_periods,
                missing=cw.TreatMissingData.BREACHING,
            ),
            AlarmSpec(
                "embedding-failures",
                "Embedding failures",
                _domain_metric(METRICS.embedding_failures, "Sum", SHORT_PERIOD),
                THRESHOLDS.embedding_failures,
                "the embedding provider refused or failed requests",
            ),
            AlarmSpec(
                "stream-iterator-age",
                "Stream iterator age (ms)",
                classify.function.metric("IteratorAge", statistic="Maximum", period=SHORT_PERIOD),
                THRESHOLDS.stream_iterator_age_ms,
                "classify falls behind the source table's stream (records expire after 24 h)",
            ),
            AlarmSpec(
                "rebuild-failed",
                "Rebuild executions failed",
                state_machine.metric_failed(statistic="Sum", period=SHORT_PERIOD),
                REBUILD_FAILURES_THRESHOLD,
                "a generation rebuild failed",
            ),
            *(errors_alarm_spec(fn) for fn in functions),
        ]
        self.alarms = create_alarms(self, specs, self.topic)

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=NAMES.service)
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="dynembed alarms", alarms=list(self.alarms.values()), width=24)
        )
        widgets: list[cw.IWidget] = [
            cw.AlarmWidget(title=spec.title, alarm=self.alarms[spec.slug], width=8, height=6)
            for spec in specs
        ]
        for row_start in range(0, len(widgets), 3):
            self.dashboard.add_widgets(*widgets[row_start : row_start + 3])
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Live queries: query drift (mean cosine to the nearest golden query)",
                width=12,
                left=[_domain_metric(METRICS.golden_similarity, "Average", SHORT_PERIOD)],
            ),
            cw.GraphWidget(
                title="Shadow overlap@10 of a building candidate",
                width=12,
                left=[_domain_metric(METRICS.shadow_overlap, "Average", SHORT_PERIOD)],
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Embedding work (sum per 5 min)",
                width=24,
                left=[
                    _domain_metric(name, "Sum", SHORT_PERIOD)
                    for name in (
                        METRICS.embeddings_computed,
                        METRICS.embeddings_skipped,
                        METRICS.chunks_written,
                    )
                ],
            )
        )


def _sampled_rate(name: str, label: str) -> cw.MathExpression:
    """The Average of a 0/1 metric (a rate), counted only over periods with enough samples:
    three queries at night, one of them weak, must not page."""
    return cw.MathExpression(
        expression=f"IF(n >= {THRESHOLDS.live_min_samples:g}, rate, 0)",
        using_metrics={
            "rate": _domain_metric(name, "Average", SHORT_PERIOD),
            "n": _domain_metric(name, "SampleCount", SHORT_PERIOD),
        },
        label=f"{label} rate (periods with >= {THRESHOLDS.live_min_samples:g} samples)",
        period=SHORT_PERIOD,
    )


def _domain_metric(name: str, statistic: str, period: Duration) -> cw.Metric:
    return cw.Metric(
        namespace=NAMES.metrics_namespace,
        metric_name=name,
        dimensions_map={"service": NAMES.service},
        statistic=statistic,
        period=period,
    )
