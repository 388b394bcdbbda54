"""cdk-nag (AwsSolutions) runs on every synth: nothing unacknowledged, every acknowledgement reasoned."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs

from dynembed_infra import nag
from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra

# Adding a rule here is a review decision: say why in the acknowledgement's reason.
# S1: the reports bucket has no server access logs (writes are the workflow role's, in CloudTrail).
ACKNOWLEDGEABLE_RULES = {"IAM5", "OS1", "OS3", "OS4", "OS7", "S1", "SQS3"}


def _acknowledged_rules(report: dict[str, Any]) -> list[dict[str, Any]]:
    (plugin,) = [p for p in report["pluginReports"] if p["pluginName"] == nag.PACK]
    return list(plugin.get("suppressedViolations", []))


@pytest.mark.parametrize("variant", ["synth", "vpc_synth", "endpoint_synth"])
def test_no_unacknowledged_finding_and_every_acknowledgement_has_a_reason(
    variant: str, request: pytest.FixtureRequest
) -> None:
    # GIVEN a synthesised deployment variant and its validation report
    synth: Synth = request.getfixturevalue(variant)
    (plugin,) = [p for p in synth.report["pluginReports"] if p["pluginName"] == nag.PACK]
    # THEN the pack passed with no open violation
    assert plugin["conclusion"] == "success"
    assert plugin["violations"] == []
    # AND each acknowledged finding is of an allowed rule and explains itself
    for ack in _acknowledged_rules(synth.report):
        rule = re.match(r"AwsSolutions-([A-Z]+\d+)", ack["ruleName"])
        assert rule and rule.group(1) in ACKNOWLEDGEABLE_RULES, ack["ruleName"]
        assert ack["acknowledgedId"] == f"{nag.PACK}::{ack['ruleName']}"
        assert len(ack["reason"]) >= 40, ack


def test_vpc_domain_with_dedicated_masters_needs_no_domain_acknowledgement_but_ip_allowlisting(
    vpc_synth: Synth,
) -> None:
    acknowledged = {a["ruleName"] for a in _acknowledged_rules(vpc_synth.report)}
    assert "AwsSolutions-OS3" in acknowledged
    assert not acknowledged & {"AwsSolutions-OS1", "AwsSolutions-OS4", "AwsSolutions-OS7"}


def test_an_unacknowledged_finding_fails_the_synth(tmp_path: Any) -> None:
    # GIVEN an app with the checks and a queue that breaks three AwsSolutions rules
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Bad")
    sqs.Queue(stack, "Plain", encryption=sqs.QueueEncryption.UNENCRYPTED)
    nag.add_checks(app)
    # WHEN synthesised  THEN synthesis stops and names the rule
    with pytest.raises(RuntimeError, match="AwsSolutions-SQS4"):
        app.synth()


def test_acknowledgement_without_a_real_reason_is_refused() -> None:
    app = App()
    stack = Stack(app, "Lazy")
    with pytest.raises(ValueError, match="specific reason"):
        nag.acknowledge(stack, "IAM5", "needed")


def test_flatten_reference_matches_cdk_nag_rendering() -> None:
    # GIVEN a resolved ARN built from pseudo parameters and an attribute
    resolved = {
        "Fn::Join": [
            "",
            ["arn:", {"Ref": "AWS::Partition"}, ":es:", {"Fn::GetAtt": ["Domain1", "Arn"]}, "/*"],
        ]
    }
    # THEN it flattens the way cdk-nag names the finding
    assert nag.flatten_reference(resolved) == "arn:<AWS::Partition>:es:<Domain1.Arn>/*"
    assert nag.flatten_reference({"Fn::Sub": "arn:${AWS::Partition}:x"}) == "arn:<AWS::Partition>:x"
