"""Template assertions on the quality monitors: the canary and sentinel functions, their
least-privilege roles, their schedules and their alarms (missing data breaching)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from dynembed.core.config import METRICS, NAMES, THRESHOLDS, TUNING
from dynembed.core.models import SENTINEL_ID_PREFIX
from tests.infra.conftest import Synth
from tests.infra.test_stack import _es_allows

pytestmark = pytest.mark.infra

MONITORS = ("canary", "sentinel")
TABLE_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return set(action) if isinstance(action, list) else {action}


def _statements(synth: Synth, name: str) -> list[dict[str, Any]]:
    return synth.statements_of_role(synth.role_id_of_function(name))


def _refers_to(statement: dict[str, Any], logical_id: str) -> bool:
    return logical_id in json.dumps(statement["Resource"])


@pytest.mark.parametrize("name", MONITORS)
def test_monitor_functions_share_the_runtime_contract(synth: Synth, name: str) -> None:
    props = synth.resources[synth.function_id(name)]["Properties"]
    assert props["Handler"] == "handler.handler"
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Layers"] == [{"Ref": synth.logical_id(synth.stack.functions.shared.layer)}]
    assert (
        props["Timeout"] == {"canary": TUNING.canary_timeout_s, "sentinel": TUNING.sentinel_timeout_s}[name]
    )
    assert "DYNEMBED_SOURCE_TABLE" in props["Environment"]["Variables"]


@pytest.mark.parametrize(
    ("name", "minutes"), [("canary", TUNING.canary_rate_minutes), ("sentinel", TUNING.sentinel_rate_minutes)]
)
def test_monitors_run_on_schedules_at_the_configured_rate_without_retries(
    synth: Synth, name: str, minutes: int
) -> None:
    expression = (
        f"rate({minutes} minutes)"
        if minutes % 60
        else f"rate({minutes // 60} hour{'s' if minutes > 60 else ''})"
    )
    synth.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": f"{NAMES.service}-{name}",
            "ScheduleExpression": expression,
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Fn::GetAtt": [synth.function_id(name), "Arn"]},
                        "RetryPolicy": Match.object_like({"MaximumRetryAttempts": 0}),
                    }
                )
            ],
        },
    )


def test_the_sentinel_writes_only_its_own_items_of_the_source_table(synth: Synth) -> None:
    # GIVEN the sentinel's role
    source = synth.logical_id(synth.stack.data.source_table)
    statements = _statements(synth, "sentinel")
    writes = [s for s in statements if s["Effect"] == "Allow" and _actions(s) & TABLE_WRITES]
    # THEN its one write statement is PutItem/DeleteItem on the source table, held to the sentinel prefix
    assert writes == [
        {
            "Action": ["dynamodb:DeleteItem", "dynamodb:PutItem"],
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{SENTINEL_ID_PREFIX}*"]}},
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [source, "Arn"]},
        }
    ]
    # AND it reads nothing of the source or the ledger, and searches as the search function does
    assert not any(_refers_to(s, synth.logical_id(synth.stack.data.ledger_table)) for s in statements)
    assert not any(_refers_to(s, source) and "dynamodb:GetItem" in _actions(s) for s in statements)
    assert _es_allows(statements) == _es_allows(_statements(synth, "search"))
    assert "bedrock:InvokeModel" in set().union(*(_actions(s) for s in statements))


def test_the_canary_reads_and_only_updates_the_registry(synth: Synth) -> None:
    statements = _statements(synth, "canary")
    registry = synth.logical_id(synth.stack.data.registry_table)
    writes = [s for s in statements if s["Effect"] == "Allow" and _actions(s) & TABLE_WRITES]
    assert writes and all(_actions(s) & TABLE_WRITES == {"dynamodb:UpdateItem"} for s in writes)
    assert all(_refers_to(s, registry) for s in writes)
    # AND on the index it may do what the audit may (read, refresh, scroll), nothing more
    assert _es_allows(statements) == _es_allows(_statements(synth, "audit"))


@pytest.mark.parametrize("name", MONITORS)
def test_monitors_publish_through_their_logs_not_put_metric_data(synth: Synth, name: str) -> None:
    assert not [s for s in _statements(synth, name) if "cloudwatch:PutMetricData" in _actions(s)]


def test_the_canary_reads_golden_sets_only_under_the_configured_prefixes(vpc_synth: Synth) -> None:
    s3 = [s for s in _statements(vpc_synth, "canary") if any(a.startswith("s3:") for a in _actions(s))]
    assert s3 and all(_actions(s) == {"s3:GetObject"} for s in s3)
    reads = sorted(
        json.dumps(r)
        for s in s3
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    )
    assert len(reads) == 2
    assert ":s3:::golden-sets/python-faq*" in reads[0] and ":s3:::team-evals/*" in reads[1]


def test_an_attached_kms_table_lets_the_sentinel_encrypt_its_writes(vpc_synth: Synth) -> None:
    kms = [s for s in _statements(vpc_synth, "sentinel") if any(a.startswith("kms:") for a in _actions(s))]
    assert kms and {"kms:Encrypt", "kms:Decrypt"} <= set().union(*(_actions(s) for s in kms))


ALARMS = [
    (
        "canary-ndcg-drop",
        METRICS.canary_ndcg_drop,
        THRESHOLDS.canary_max_drop,
        TUNING.canary_alarm_period_s,
        1,
    ),
    (
        "canary-recall-drop",
        METRICS.canary_recall_drop,
        THRESHOLDS.canary_max_drop,
        TUNING.canary_alarm_period_s,
        1,
    ),
    ("canary-mrr-drop", METRICS.canary_mrr_drop, THRESHOLDS.canary_max_drop, TUNING.canary_alarm_period_s, 1),
    (
        "canary-probe-failures",
        METRICS.canary_probe_failures,
        THRESHOLDS.canary_probe_failures,
        TUNING.canary_alarm_period_s,
        1,
    ),
    (
        "end-to-end-freshness",
        METRICS.e2e_freshness,
        THRESHOLDS.sentinel_freshness_s,
        TUNING.sentinel_alarm_period_s,
        TUNING.sentinel_alarm_periods,
    ),
    (
        "end-to-end-delete",
        METRICS.e2e_delete,
        THRESHOLDS.sentinel_delete_s,
        TUNING.sentinel_alarm_period_s,
        TUNING.sentinel_alarm_periods,
    ),
]


@pytest.mark.parametrize(("slug", "metric", "threshold", "period", "periods"), ALARMS)
def test_monitor_alarms_breach_on_missing_data_and_notify_the_topic(
    synth: Synth, slug: str, metric: str, threshold: float, period: int, periods: int
) -> None:
    topic = synth.logical_id(synth.stack.monitoring.topic)
    synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"{NAMES.service}-{slug}",
            "Namespace": NAMES.metrics_namespace,
            "MetricName": metric,
            "Dimensions": [{"Name": "service", "Value": NAMES.service}],
            "Statistic": "Maximum",
            "Period": period,
            "Threshold": threshold,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "breaching",
            "AlarmActions": [{"Ref": topic}],
            "OKActions": [{"Ref": topic}],
            "AlarmDescription": Match.string_like_regexp(f"docs/operations.md#alarm-runbook \\({slug}\\)"),
        },
    )


def test_every_monitor_alarm_has_a_runbook_entry() -> None:
    from tests.infra.conftest import REPO_ROOT

    runbook = (REPO_ROOT / "docs" / "operations.md").read_text()
    for slug, *_ in ALARMS:
        assert f"| `{slug}` |" in runbook, slug


def test_the_dashboard_shows_the_monitor_alarms(synth: Synth) -> None:
    (dashboard,) = synth.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for alarm in synth.stack.quality.alarms.values():
        assert synth.logical_id(alarm) in body
