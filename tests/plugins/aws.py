"""Fixtures for AWS: moto in-process (``moto_aws``: tables and queues for adapter tests) and
the local stack (moto threaded server + osmem-server + pumps + real handlers)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from dynembed.core.schema import SourceSchema, TombstoneRule
from dynembed_ops.local.stack import LocalStack

E2E_SCHEMA = SourceSchema(
    metadata_attributes=("category", "kind", "source"),
    tombstone=TombstoneRule(attribute="status", values=("archived",)),
)


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    """A fresh local stack per test module, with a hash-256 generation active."""
    with LocalStack(schema=E2E_SCHEMA) as stack:
        stack.services().bootstrap("hash-256", generation_id="g-hash")
        yield stack


@dataclass
class MotoAws:
    """DynamoDB and SQS emulated in-process by moto (no server, no socket): each table or
    queue made here gets a fresh name, so tests never share state."""

    region: str

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region)

    def table(self, hash_key: str, range_key: str | None = None) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        keys = [(hash_key, "HASH")] + ([(range_key, "RANGE")] if range_key else [])
        self.client("dynamodb").create_table(
            TableName=name,
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
            BillingMode="PAY_PER_REQUEST",
        )
        return name

    def queue(self) -> str:
        url: str = self.client("sqs").create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        return url

    def receive_all(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message waiting in the queue (received and deleted), in no particular order."""
        sqs = self.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return out
            out.extend(batch)
            for message in batch:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def without_endpoint_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's in-process mock only sees requests to AWS hosts: an endpoint left in the
    environment (a local stack's, say) would send them to a server that may be gone."""
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoAws]:
    """moto's in-process mock of AWS (tables and queues via ``MotoAws``); integration tests only."""
    from moto import mock_aws

    without_endpoint_overrides(monkeypatch)
    with mock_aws():
        yield MotoAws(region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
