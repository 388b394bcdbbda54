"""Operator queries shared by the CLI and the local runtime: queue depths, dead letters,
which alarms would fire with the stack's thresholds (the monitors' figures read back from
CloudWatch, which moto stores but never evaluates)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dynembed.core.config import METRICS, NAMES, THRESHOLDS, TUNING
from dynembed.core.models import ReconcileJob
from dynembed.core.telemetry import percentile


@dataclass
class QueueDepth:
    visible: int
    in_flight: int
    oldest_age_s: float | None = None


def queue_depth(sqs: Any, url: str) -> QueueDepth:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return QueueDepth(
        int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])
    )


def peek_dead_letters(sqs: Any, url: str, limit: int = 100) -> list[dict[str, Any]]:
    """Dead-lettered jobs with their reason; they become visible again right away (a peek)."""
    out: list[dict[str, Any]] = []
    handles: list[str] = []
    while len(out) < limit:
        response = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        messages = response.get("Messages", [])
        if not messages:
            break
        for message in messages:
            handles.append(message["ReceiptHandle"])
            attributes = message.get("MessageAttributes") or {}
            body = _json(message["Body"])
            out.append(
                {
                    "message_id": message["MessageId"],
                    "doc_id": body.get("doc_id") if isinstance(body, dict) else None,
                    "reason": (attributes.get("reason") or {}).get(
                        "StringValue", "exhausted retries (no reason recorded)"
                    ),
                    "attempts": (attributes.get("attempts") or {}).get("StringValue"),
                    "body": body,
                }
            )
    for handle in handles:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return out


def redrive(sqs: Any, dlq_url: str, queue_url: str) -> int:
    """Send every dead-lettered job back to the jobs queue (valid jobs only; others stay)."""
    moved = 0
    while True:
        messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return moved
        for message in messages:
            try:
                job = ReconcileJob.model_validate_json(message["Body"])
            except ValueError:
                continue  # a malformed body would only fail again; it stays for inspection
            sqs.send_message(
                QueueUrl=queue_url, MessageBody=job.model_copy(update={"force": True}).model_dump_json()
            )
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1


def alarms(
    freshness_s: list[float],
    jobs: QueueDepth,
    dlq: QueueDepth,
    audit_totals: dict[str, float] | None,
    monitors: Mapping[str, float | None] | None = None,
) -> list[dict[str, Any]]:
    """The stack's alarms, evaluated locally on the same thresholds (moto never evaluates them)."""
    p95 = percentile(freshness_s, 95)
    rows = [
        ("FreshnessLagP95", p95, THRESHOLDS.freshness_p95_s),
        ("DeadLetterQueueNotEmpty", float(dlq.visible + dlq.in_flight), THRESHOLDS.dlq_messages),
    ]
    if audit_totals is not None:
        rows += [
            ("OrphanedVectors", audit_totals.get("orphaned_vectors", 0.0), THRESHOLDS.orphaned_vectors),
            ("StaleDocuments", audit_totals.get("stale_documents", 0.0), THRESHOLDS.stale_documents),
        ]
    evaluated = [
        {
            "alarm": name,
            "value": value,
            "threshold": threshold,
            "firing": value is not None and value > threshold,
        }
        for name, value, threshold in rows
    ]
    return evaluated + (monitor_alarms(monitors) if monitors is not None else [])


# The monitors' alarms: (alarm, metric under the service dimension, threshold, seconds of data
# the stack's alarm looks at). Missing data breaches: a monitor that stops is itself a failure.
MONITOR_ALARMS: tuple[tuple[str, str, float, int], ...] = (
    ("CanaryNdcgDrop", METRICS.canary_ndcg_drop, THRESHOLDS.canary_max_drop, TUNING.canary_alarm_period_s),
    (
        "CanaryRecallDrop",
        METRICS.canary_recall_drop,
        THRESHOLDS.canary_max_drop,
        TUNING.canary_alarm_period_s,
    ),
    ("CanaryMrrDrop", METRICS.canary_mrr_drop, THRESHOLDS.canary_max_drop, TUNING.canary_alarm_period_s),
    (
        "CanaryProbeFailures",
        METRICS.canary_probe_failures,
        THRESHOLDS.canary_probe_failures,
        TUNING.canary_alarm_period_s,
    ),
    (
        "EndToEndFreshness",
        METRICS.e2e_freshness,
        THRESHOLDS.sentinel_freshness_s,
        TUNING.sentinel_alarm_period_s * TUNING.sentinel_alarm_periods,
    ),
    (
        "EndToEndDelete",
        METRICS.e2e_delete,
        THRESHOLDS.sentinel_delete_s,
        TUNING.sentinel_alarm_period_s * TUNING.sentinel_alarm_periods,
    ),
)


def monitor_alarms(latest: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """The monitors' alarms on ``latest`` (metric name → its newest value in the alarm's window,
    or None): missing data is breaching, as in the stack."""
    rows = []
    for name, metric, threshold, _window in MONITOR_ALARMS:
        value = latest.get(metric)
        rows.append(
            {
                "alarm": name,
                "value": value,
                "threshold": threshold,
                "firing": value is None or value > threshold,
                "missing": value is None,
            }
        )
    return rows


def latest_monitor_values(cloudwatch: Any, now: datetime | None = None) -> dict[str, float | None]:
    """The newest value of each monitor metric (service dimension) within its alarm's window."""
    now = now or datetime.now(UTC)
    queries = [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMES.metrics_namespace,
                    "MetricName": metric,
                    "Dimensions": [{"Name": "service", "Value": NAMES.service}],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
        }
        for i, (_name, metric, _threshold, _window) in enumerate(MONITOR_ALARMS)
    ]
    oldest = max(window for *_, window in MONITOR_ALARMS)
    response = cloudwatch.get_metric_data(
        MetricDataQueries=queries,
        StartTime=now - timedelta(seconds=oldest),
        EndTime=now + timedelta(minutes=1),
        ScanBy="TimestampDescending",
    )
    found = {r["Id"]: r for r in response.get("MetricDataResults", [])}
    latest: dict[str, float | None] = {}
    for i, (_name, metric, _threshold, window) in enumerate(MONITOR_ALARMS):
        result = found.get(f"m{i}") or {}
        points = [
            (ts, value)
            for ts, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
            if ts >= now - timedelta(seconds=window)
        ]
        latest[metric] = float(max(points)[1]) if points else None
    return latest


def monitors_status(svc: Any) -> dict[str, Any]:
    """The canary of the active generation and the sentinel's latest figures, for `status`."""
    import boto3

    from dynembed.quality.canary import summary
    from dynembed.rebuild.generations import find_active

    latest = latest_monitor_values(boto3.client("cloudwatch", region_name=svc.settings.region))
    active = find_active(svc.registry)
    return {
        "latest": latest,
        "canary": summary(active.canary) if active is not None else None,
        "sentinel": {
            "freshness_s": latest.get(METRICS.e2e_freshness),
            "delete_s": latest.get(METRICS.e2e_delete),
        },
    }


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
