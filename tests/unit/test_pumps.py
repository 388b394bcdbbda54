"""The local pumps behave like Lambda event source mappings (fakes for the AWS clients)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynembed_ops.local.pumps import SqsPump, StreamPump

pytestmark = pytest.mark.unit


class FakeStreams:
    def __init__(self, n: int) -> None:
        self.records = [
            {"eventID": str(i), "eventName": "INSERT", "dynamodb": {"SequenceNumber": f"{i:05d}", "Keys": {}}}
            for i in range(n)
        ]
        self.served = False

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "s1"}]}}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "it"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        if self.served:
            return {"Records": [], "NextShardIterator": "it"}
        self.served = True
        return {"Records": self.records, "NextShardIterator": "it"}


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.visibility: dict[str, int] = {}

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        self.sent.append(json.loads(MessageBody))

    def receive_message(self, **_: Any) -> dict[str, Any]:
        visible = [
            m
            for m in self.messages
            if m["ReceiptHandle"] not in self.deleted and self.visibility.get(m["ReceiptHandle"], 0) == 0
        ]
        for m in visible:
            self.visibility[m["ReceiptHandle"]] = 1
            m["Attributes"]["ApproximateReceiveCount"] = str(
                int(m["Attributes"]["ApproximateReceiveCount"]) + 1
            )
        return {"Messages": visible[:10]}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> None:
        self.deleted += [e["ReceiptHandle"] for e in Entries]

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        self.visibility[ReceiptHandle] = VisibilityTimeout


def _stream_pump(n: int, invoke: Any, **kw: Any) -> tuple[StreamPump, FakeSqs]:
    sqs = FakeSqs()
    pump = StreamPump(FakeStreams(n), sqs, "arn:stream", invoke, on_failure_queue_url="q", **kw)
    return pump, sqs


def test_stream_batches_carry_lambda_shape_and_respect_batch_size() -> None:
    seen: list[list[str]] = []

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        assert all(
            r["eventSourceARN"] == "arn:stream" and r["eventSource"] == "aws:dynamodb"
            for r in event["Records"]
        )
        seen.append([r["eventID"] for r in event["Records"]])
        return {"batchItemFailures": []}

    pump, _ = _stream_pump(5, invoke, batch_size=2)
    while pump.step():
        pass
    assert seen == [["0", "1"], ["2", "3"], ["4"]]


def test_partial_failure_retries_from_the_first_failed_record() -> None:
    calls: list[list[str]] = []

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        ids = [r["eventID"] for r in event["Records"]]
        calls.append(ids)
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": "00002"}]}
        return {"batchItemFailures": []}

    pump, _ = _stream_pump(4, invoke, batch_size=4)
    while pump.step():
        pass
    assert calls == [["0", "1", "2", "3"], ["2", "3"]]


def test_function_error_bisects_then_sends_the_poison_record_to_the_failure_destination() -> None:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        if any(r["eventID"] == "2" for r in event["Records"]):
            raise RuntimeError("poison")
        return {"batchItemFailures": []}

    pump, sqs = _stream_pump(4, invoke, batch_size=4, max_retries=2)
    for _ in range(20):
        pump.step()
    assert pump.pending() == 0
    assert [r["eventID"] for msg in sqs.sent for r in msg["records"]] == ["2"]
    assert sqs.sent[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert pump.stats.bisects >= 1 and pump.stats.records == 3


def test_sqs_partial_failures_come_back_and_successes_are_deleted() -> None:
    sqs = FakeSqs()
    sqs.messages = [
        {
            "MessageId": f"m{i}",
            "ReceiptHandle": f"r{i}",
            "Body": "{}",
            "Attributes": {"ApproximateReceiveCount": "0"},
        }
        for i in range(3)
    ]
    attempts: list[int] = []

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        assert all(r["eventSource"] == "aws:sqs" and r["eventSourceARN"] == "arn:q" for r in event["Records"])
        attempts.append(len(event["Records"]))
        return {"batchItemFailures": [{"itemIdentifier": "m1"}] if len(attempts) == 1 else []}

    pump = SqsPump(sqs, "url", "arn:q", invoke)
    pump.step()
    assert sqs.deleted == ["r0", "r2"] and sqs.visibility["r1"] == 0
    pump.step()
    assert attempts == [3, 1] and sorted(sqs.deleted) == ["r0", "r1", "r2"]
