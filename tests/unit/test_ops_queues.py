"""`status` and `dlq` read the jobs DLQ and the stream-failures queue without consuming them, and
put each parked stream record in a person's terms: which doc or records, and why."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from dynembed_ops.ops import QueueDepth, alarms, describe_stream_failure, peek_stream_failures

pytestmark = pytest.mark.unit


@dataclass
class FakeSqs:
    """Visibility as SQS has it: a received message is hidden until its visibility is reset."""

    bodies: list[str]
    hidden: set[int] = field(default_factory=set)

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int, **_: Any) -> dict[str, Any]:
        visible = [i for i in range(len(self.bodies)) if i not in self.hidden][:MaxNumberOfMessages]
        self.hidden |= set(visible)
        return {
            "Messages": [
                {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": self.bodies[i]} for i in visible
            ]
        }

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        assert VisibilityTimeout == 0
        self.hidden.discard(int(ReceiptHandle[1:]))


MALFORMED = {
    "reason": "doc 'poison': version attribute 'version' is not a valid number: 'x'",
    "doc_id": "poison",
    "record": {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "000042"}},
}
BATCH = {
    "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
    "responseContext": {"functionError": "Unhandled", "reason": "classify timed out"},
    "DDBStreamBatchInfo": {"startSequenceNumber": "7", "endSequenceNumber": "9", "batchSize": 3},
}


def test_a_malformed_record_names_its_doc_and_reason() -> None:
    assert describe_stream_failure(MALFORMED) == {
        "kind": "record",
        "doc_id": "poison",
        "reason": MALFORMED["reason"],
        "event": "INSERT",
        "sequence": "000042",
    }


def test_an_abandoned_batch_names_its_records_and_why() -> None:
    described = describe_stream_failure(BATCH)
    assert described["kind"] == "batch" and described["records"] == 3
    assert described["reason"] == "RetryAttemptsExhausted after 6 attempts: classify timed out"
    assert described["sequence_range"] == ["7", "9"]
    aws = describe_stream_failure(
        {"requestContext": {"condition": "RecordAgeExceeded"}, "responseContext": {}}
    )
    assert aws["reason"].startswith("RecordAgeExceeded")


def test_peeking_consumes_nothing() -> None:
    # GIVEN 23 parked records (more than one receive returns)
    sqs = FakeSqs([json.dumps(MALFORMED)] * 22 + ["not json"])
    # WHEN peeked twice
    first = peek_stream_failures(sqs, "url")
    second = peek_stream_failures(sqs, "url")
    # THEN both peeks see all of them and every message is visible again
    assert len(first) == len(second) == 23 and not sqs.hidden
    assert first[-1]["kind"] == "unknown" and "not json" in first[-1]["reason"]
    assert len(peek_stream_failures(sqs, "url", limit=5)) == 5 and not sqs.hidden


def test_parked_stream_records_fire_their_alarm() -> None:
    empty = QueueDepth(0, 0)
    rows = {a["alarm"]: a["firing"] for a in alarms([], empty, empty, None, stream_failures=QueueDepth(1, 0))}
    assert rows["StreamFailuresNotEmpty"] is True and rows["DeadLetterQueueNotEmpty"] is False
