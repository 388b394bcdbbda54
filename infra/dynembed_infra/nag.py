"""cdk-nag (3.x) wiring: the AwsSolutions pack runs on every synth; acknowledgements carry reasons.

cdk-nag 3 reports through CDK's policy-validation framework: a finding that is not
acknowledged fails the synth and lands in ``policy-validation-report.json``. Acknowledgements
use the plugin-qualified id (``AwsSolutions::AwsSolutions-IAM5[...]``) so CDK records each one,
with its reason, in that same report: the audit trail lives next to the template.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK = "AwsSolutions"


def add_checks(app: IConstruct) -> None:
    """Run the AwsSolutions rules over every stack of ``app`` at synth time."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str, finding: str | None = None) -> None:
    """Acknowledge one finding of ``rule`` (e.g. ``IAM5``) on ``scope`` and everything under it."""
    if len(reason) < 20:
        raise ValueError(f"acknowledging {rule}: give a specific reason, not {reason!r}")
    rule_id = f"{PACK}-{rule}" + (f"[{finding}]" if finding else "")
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}::{rule_id}", reason=reason))


def wildcard_resource(scope: IConstruct, resource: str) -> str:
    """The IAM5 finding cdk-nag reports for ``resource`` (a string that may hold tokens)."""
    return "Resource::" + flatten_reference(Stack.of(scope).resolve(resource))


def flatten_reference(node: Any) -> str:
    """Port of cdk-nag's ``flattenCfnReference``: a resolved CloudFormation value as flat text."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(flatten_reference(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))
