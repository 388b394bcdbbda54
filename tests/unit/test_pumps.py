"""The local pumps behave like Lambda event source mappings (fakes for the AWS clients)."""

from __future__ import annotations

import json
import threading
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

    def receive_message(self, MaxNumberOfMessages: int = 10, **_: Any) -> dict[str, Any]:
        visible = [
            m
            for m in self.messages
            if m["ReceiptHandle"] not in self.deleted and self.visibility.get(m["ReceiptHandle"], 0) == 0
        ][:MaxNumberOfMessages]
        for m in visible:
            self.visibility[m["ReceiptHandle"]] = 1
            m["Attributes"]["ApproximateReceiveCount"] = str(
                int(m["Attributes"]["ApproximateReceiveCount"]) + 1
            )
        return {"Messages": visible}

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
    sqs = _queued(3)
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


def _queued(n: int) -> FakeSqs:
    sqs = FakeSqs()
    sqs.messages = [
        {
            "MessageId": f"m{i}",
            "ReceiptHandle": f"r{i}",
            "Body": "{}",
            "Attributes": {"ApproximateReceiveCount": "0"},
        }
        for i in range(n)
    ]
    return sqs


def test_concurrent_pollers_overlap_invocations_and_handle_every_message_once() -> None:
    # GIVEN 40 queued jobs and a function that waits until a second invocation is running
    sqs = _queued(40)
    running, peak, handled = 0, 0, []
    lock = threading.Lock()
    both_in = threading.Barrier(2, timeout=5)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            handled.extend(r["messageId"] for r in event["Records"])
        if len(handled) <= 20:
            both_in.wait()  # the first two batches only return once both are in flight
        with lock:
            running -= 1
        return {"batchItemFailures": []}

    pump = SqsPump(sqs, "url", "arn:q", invoke, batch_size=10, concurrency=2)
    # WHEN the pump drains the queue with two pollers
    moved = pump.drain()
    # THEN two invocations ran at once, never more, and each job was handled and deleted once
    assert peak == 2
    assert moved == 40 and sorted(handled) == sorted(f"m{i}" for i in range(40))
    assert sorted(sqs.deleted) == sorted(f"r{i}" for i in range(40))
    assert pump.stats.batches == 4 and pump.stats.messages == 40 and pump.stats.failures == 0


def test_concurrent_pollers_retry_failures_until_they_succeed() -> None:
    sqs = _queued(25)
    failed_once: set[str] = set()
    lock = threading.Lock()

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        with lock:
            first = [r["messageId"] for r in event["Records"] if r["messageId"] not in failed_once]
            odd = [m for m in first if int(m[1:]) % 2]
            failed_once.update(odd)
        return {"batchItemFailures": [{"itemIdentifier": m} for m in odd]}

    pump = SqsPump(sqs, "url", "arn:q", invoke, batch_size=10, concurrency=3)
    while pump.drain():
        pass
    assert sorted(sqs.deleted) == sorted(f"r{i}" for i in range(25))
    assert pump.stats.failures == 12 and pump.stats.messages == 25


def test_a_single_poller_drains_in_order() -> None:
    sqs = _queued(12)
    batches: list[list[str]] = []

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        batches.append([r["messageId"] for r in event["Records"]])
        return {"batchItemFailures": []}

    assert SqsPump(sqs, "url", "arn:q", invoke, batch_size=5).drain() == 12
    assert batches == [[f"m{i}" for i in range(k, min(k + 5, 12))] for k in (0, 5, 10)]
