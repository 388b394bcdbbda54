"""Why the local runtime runs the Backfill Map inline (``local_definition``): moto interprets a
Distributed Map but a failed child does not fail it, unlike AWS with no tolerated failures.
If this test starts failing, moto has caught up and the local definition can stay distributed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dynembed_ops.local.stepfunctions import local_definition
from tests.plugins.aws import without_endpoint_overrides

pytestmark = pytest.mark.integration

MACHINE = {
    "StartAt": "Segments",
    "States": {
        "Segments": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "Label": "Segments",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Odd",
                "States": {
                    "Odd": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$", "NumericEquals": 1, "Next": "Stop"}],
                        "Default": "Done",
                    },
                    "Stop": {"Type": "Fail", "Error": "SegmentStopped", "Cause": "segment 1 failed"},
                    "Done": {"Type": "Pass", "Result": {}, "End": True},
                },
            },
            "ResultPath": None,
            "End": True,
        }
    },
}


@pytest.fixture
def sfn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    without_endpoint_overrides(monkeypatch)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name="us-east-1")


def run(sfn: Any, definition: str) -> dict[str, Any]:
    arn = sfn.create_state_machine(
        name=f"m{time.monotonic_ns()}", definition=definition, roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": [0, 1, 2]}))[
        "executionArn"
    ]
    for _ in range(200):
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError("execution did not finish")


def test_moto_lets_a_distributed_map_succeed_although_a_child_failed(sfn: Any) -> None:
    # GIVEN a Distributed Map with no tolerated failures, one of whose three children fails
    # WHEN moto runs it
    described = run(sfn, json.dumps(MACHINE))
    # THEN moto reports success (AWS fails the Map: States.ExceedToleratedFailureThreshold)
    assert described["status"] == "SUCCEEDED"


def test_the_inline_local_form_fails_as_aws_would(sfn: Any) -> None:
    described = run(sfn, local_definition(json.dumps(MACHINE)))
    assert described["status"] == "FAILED"
    assert described.get("error") == "SegmentStopped"
