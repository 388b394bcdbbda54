"""Operator queries shared by the CLI and the local runtime: queue depths, dead letters,
which alarms would fire with the stack's thresholds (moto never evaluates alarms)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dynembed.core.config import METRICS, THRESHOLDS, TUNING
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
    out = []
    for message in _peek(sqs, url, limit):
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
    return out


def peek_stream_failures(sqs: Any, url: str, limit: int = 100) -> list[dict[str, Any]]:
    """What the stream-failures queue holds, with reasons, without consuming it: malformed
    records classify parked (doc, reason, the record) and batches the event source gave up on
    (Lambda's on-failure record: condition, error, the batch's sequence range)."""
    return [
        {"message_id": message["MessageId"], **describe_stream_failure(_json(message["Body"]))}
        for message in _peek(sqs, url, limit)
    ]


def describe_stream_failure(body: Any) -> dict[str, Any]:
    """One stream-failures message in a person's terms: which doc or records, and why."""
    if not isinstance(body, dict):
        return {"kind": "unknown", "doc_id": None, "reason": f"unreadable message: {str(body)[:200]}"}
    if "DDBStreamBatchInfo" in body or "requestContext" in body:
        batch = body.get("DDBStreamBatchInfo") or {}
        request, response = body.get("requestContext") or {}, body.get("responseContext") or {}
        why = response.get("reason") or response.get("functionError") or "function error"
        return {
            "kind": "batch",
            "doc_id": None,
            "reason": f"{request.get('condition', 'RetryAttemptsExhausted')} after "
            f"{request.get('approximateInvokeCount', '?')} attempts: {why}",
            "records": batch.get("batchSize"),
            "sequence_range": [batch.get("startSequenceNumber"), batch.get("endSequenceNumber")],
        }
    record = body.get("record")
    record = record if isinstance(record, dict) else {}
    return {
        "kind": "record",
        "doc_id": body.get("doc_id"),
        "reason": str(body.get("reason") or "no reason recorded"),
        "event": record.get("eventName"),
        "sequence": (record.get("dynamodb") or {}).get("SequenceNumber"),
    }


def _peek(sqs: Any, url: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` messages, each made visible again at once (nothing consumed)."""
    out: list[dict[str, Any]] = []
    try:
        while len(out) < limit:
            response = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, limit - len(out)),
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            out += messages
    finally:
        for message in out:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
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
    stream_failures: QueueDepth | None = None,
    signals: Any | None = None,
    monitors: Mapping[str, float | None] | None = None,
) -> list[dict[str, Any]]:
    """The stack's alarms, evaluated locally on the same thresholds (moto never evaluates them).
    ``signals`` is a ``SignalSummary`` of the serving generation's recent samples."""
    p95 = percentile(freshness_s, 95)
    rows: list[tuple[str, float | None, float]] = [
        ("FreshnessLagP95", p95, THRESHOLDS.freshness_p95_s),
        ("DeadLetterQueueNotEmpty", float(dlq.visible + dlq.in_flight), THRESHOLDS.dlq_messages),
    ]
    if stream_failures is not None:  # the stack's "stream records parked" alarm
        parked = float(stream_failures.visible + stream_failures.in_flight)
        rows.append(("StreamFailuresNotEmpty", parked, THRESHOLDS.dlq_messages))
    if signals is not None and signals.samples:
        enough = signals.samples >= THRESHOLDS.live_min_samples
        weak_enough = signals.weak_samples >= THRESHOLDS.live_min_samples
        rows += [
            (
                "WeakRetrievalRate",
                signals.weak_retrieval_rate if weak_enough else None,
                THRESHOLDS.weak_retrieval_rate,
            ),
            ("ZeroResultRate", signals.zero_result_rate if enough else None, THRESHOLDS.zero_result_rate),
            ("SearchLatencyP50", signals.latency_ms.get("p50"), THRESHOLDS.search_latency_p50_ms),
            ("SearchLatencyP95", signals.latency_ms.get("p95"), THRESHOLDS.search_latency_p95_ms),
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
_SENTINEL_WINDOW_S = TUNING.sentinel_alarm_period_s * TUNING.sentinel_alarm_periods
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
    ("EndToEndFreshness", METRICS.e2e_freshness, THRESHOLDS.sentinel_freshness_s, _SENTINEL_WINDOW_S),
    ("EndToEndDelete", METRICS.e2e_delete, THRESHOLDS.sentinel_delete_s, _SENTINEL_WINDOW_S),
)


def monitor_alarms(latest: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """The monitors' alarms on ``latest`` (metric name -> its newest value in the alarm's window,
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


def monitor_values(
    telemetry: Mapping[str, Any], canary: Mapping[str, Any] | None, now: float | None = None
) -> dict[str, float | None]:
    """The newest value of each monitor metric within its alarm's window, None when there is
    none: the canary's from the serving generation's stored report (whichever process ran it),
    the sentinel's from a telemetry snapshot's gauges (the `dynembed up` process runs it)."""
    now = time.time() if now is None else now
    gauges, times = telemetry.get("gauges") or {}, telemetry.get("gauge_times") or {}
    canary_fresh = (
        bool(canary) and now - float((canary or {}).get("created_at") or 0) <= TUNING.canary_alarm_period_s
    )
    drops = (canary or {}).get("drops") or {}
    from_canary = {
        METRICS.canary_ndcg_drop: drops.get("ndcg"),
        METRICS.canary_recall_drop: drops.get("recall"),
        METRICS.canary_mrr_drop: drops.get("mrr"),
        METRICS.canary_probe_failures: (canary or {}).get("probe_failures"),
    }
    latest: dict[str, float | None] = {}
    for _name, metric, _threshold, window in MONITOR_ALARMS:
        if metric in from_canary:
            value = from_canary[metric]
            latest[metric] = float(value) if canary_fresh and value is not None else None
        elif metric in gauges and now - float(times.get(metric, 0)) <= window:
            latest[metric] = float(gauges[metric])
        else:
            latest[metric] = None
    return latest


def monitors_status(svc: Any, telemetry: Mapping[str, Any]) -> dict[str, Any]:
    """The canary of the serving generation and the sentinel's latest figures, for `status`."""
    from dynembed.quality.canary import summary
    from dynembed.rebuild.generations import find_active

    active = find_active(svc.registry)
    canary = active.canary if active is not None else None
    latest = monitor_values(telemetry, canary)
    return {
        "latest": latest,
        "canary": summary(canary),
        "sentinel": {"freshness_s": latest[METRICS.e2e_freshness], "delete_s": latest[METRICS.e2e_delete]},
    }


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
