"""The SQS client calls the flows make directly (the job DLQ in sync/pipeline.py, the queue depth
in the rebuild's CatchUp), on InMemorySqsClient and on boto3 against moto."""

from __future__ import annotations

from tests.contract.conftest import SqsUnderTest

DEPTH = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def test_an_empty_queue_has_depth_zero(sqs: SqsUnderTest) -> None:
    attrs = sqs.client.get_queue_attributes(QueueUrl=sqs.url, AttributeNames=DEPTH)["Attributes"]
    assert {name: int(value) for name, value in attrs.items()} == dict.fromkeys(DEPTH, 0)


def test_a_dead_lettered_job_keeps_its_body_and_reason(sqs: SqsUnderTest) -> None:
    # WHEN a message is sent with string and number attributes
    sqs.client.send_message(
        QueueUrl=sqs.url,
        MessageBody='{"doc_id": "d1"}',
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": "TransientError: throttled"},
            "attempts": {"DataType": "Number", "StringValue": "5"},
        },
    )
    # THEN the depth counts it and it reads back whole
    attrs = sqs.client.get_queue_attributes(QueueUrl=sqs.url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"] == {"ApproximateNumberOfMessages": "1"}
    [(body, attributes)] = sqs.bodies()
    assert body == '{"doc_id": "d1"}'
    assert attributes["reason"]["StringValue"] == "TransientError: throttled"
    assert (attributes["attempts"]["DataType"], attributes["attempts"]["StringValue"]) == ("Number", "5")
