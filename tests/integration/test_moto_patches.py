"""The local stack's shortcuts through moto (``dynembed_ops.local.moto_patches``) answer as
moto does: a message past its queue's retention period is not delivered, a fresh one is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dynembed_ops.local import moto_patches
from tests.plugins.aws import without_endpoint_overrides

pytestmark = pytest.mark.integration


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    without_endpoint_overrides(monkeypatch)
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _age_every_message(queue_name: str, seconds: float) -> None:
    from moto.sqs.models import sqs_backends

    queue = sqs_backends["123456789012"]["us-east-1"].get_queue(queue_name)
    for message in queue._messages:
        message.sent_timestamp = int(message.sent_timestamp) - int(seconds * 1000)


def test_retention_is_read_from_the_queue_and_still_enforced(sqs: Any) -> None:
    moto_patches.apply()
    # GIVEN a queue that keeps messages 60 s, holding one message sent 61 s ago and one just now
    url = sqs.create_queue(QueueName="kept", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="old")
    _age_every_message("kept", 61)
    sqs.send_message(QueueUrl=url, MessageBody="new")
    # WHEN both are asked for
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    # THEN only the fresh one comes back (moto stops at an expired message, as before the patch)
    bodies = [m["Body"] for m in got]
    assert "old" not in bodies
    # AND a queue with the default retention delivers an equally old message
    default = sqs.create_queue(QueueName="default")["QueueUrl"]
    sqs.send_message(QueueUrl=default, MessageBody="old")
    _age_every_message("default", 61)
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=default).get("Messages", [])] == ["old"]


def test_the_module_list_is_read_once_and_stays_the_same() -> None:
    import moto.backends

    before = sorted(moto.backends.list_of_moto_modules())
    moto_patches.apply()
    assert sorted(moto.backends.list_of_moto_modules()) == before
    assert "sqs" in before and "dynamodb" in before


def test_queue_attributes_read_on_demand_equal_moto_s_own(sqs: Any) -> None:
    from moto.sqs.models import sqs_backends

    moto_patches.apply()
    original = moto_patches.ORIGINALS["Queue.attributes"]
    # GIVEN queues of every kind the attributes depend on: standard, FIFO with content-based
    # deduplication, a redrive policy, a KMS key, a policy, with messages in flight and delayed
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(
        QueueName="jobs",
        Attributes={
            "VisibilityTimeout": "45",
            "RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": 3}}',
            "KmsMasterKeyId": "alias/aws/sqs",
        },
    )
    sqs.create_queue(
        QueueName="ordered.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )
    jobs = sqs.get_queue_url(QueueName="jobs")["QueueUrl"]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=jobs, MessageBody=body)
    sqs.send_message(QueueUrl=jobs, MessageBody="later", DelaySeconds=60)
    sqs.receive_message(QueueUrl=jobs, MaxNumberOfMessages=1)
    fifo = sqs.get_queue_url(QueueName="ordered.fifo")["QueueUrl"]
    sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g")
    sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g")  # deduplicated by content
    # THEN each queue's attributes, read on demand, are moto's own: names, order and values
    backend = sqs_backends["123456789012"]["us-east-1"]
    for name in ("dlq", "jobs", "ordered.fifo"):
        queue = backend.get_queue(name)
        assert list(queue.attributes.items()) == list(original(queue).items()), name
    assert backend.get_queue("ordered.fifo").attributes["ApproximateNumberOfMessages"] == 1
    counts = sqs.get_queue_attributes(QueueUrl=jobs, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == (
        "2",
        "1",
    )
    assert counts["ApproximateNumberOfMessagesDelayed"] == "1"
    with pytest.raises(KeyError):
        backend.get_queue("jobs").attributes["FifoQueue"]
