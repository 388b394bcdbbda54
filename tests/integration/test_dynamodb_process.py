"""DynamoDB in a child process (dynembed_ops.local.dynamodb_process): one endpoint still serves
every service, the child ends with the stack, and a child that cannot start says why."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from dynembed.core.config import NAMES
from dynembed.core.errors import DynembedError
from dynembed_ops.local.dynamodb_process import DynamoDbProcess
from dynembed_ops.local.stack import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack() as running:
        yield running


def _client(url: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def test_the_main_endpoint_and_the_child_serve_the_same_tables(stack: LocalStack) -> None:
    assert stack.info is not None and stack.info.dynamodb_url
    assert stack.info.dynamodb_url != stack.info.aws_url
    main, child = _client(stack.info.aws_url, "dynamodb"), _client(stack.info.dynamodb_url, "dynamodb")
    # WHEN a source application writes through the one endpoint `dynembed up` prints
    main.put_item(TableName=NAMES.source_table, Item={"doc_id": {"S": "via-main"}, "version": {"N": "1"}})
    # THEN the child holds it, and what the child holds reads back through the main endpoint
    got = child.get_item(TableName=NAMES.source_table, Key={"doc_id": {"S": "via-main"}}, ConsistentRead=True)
    assert got["Item"]["version"] == {"N": "1"}
    child.put_item(TableName=NAMES.source_table, Item={"doc_id": {"S": "via-child"}, "version": {"N": "2"}})
    got = main.get_item(TableName=NAMES.source_table, Key={"doc_id": {"S": "via-child"}}, ConsistentRead=True)
    assert got["Item"]["version"] == {"N": "2"}
    # AND errors come back as DynamoDB's own, through either endpoint
    with pytest.raises(main.exceptions.ResourceNotFoundException):
        main.get_item(TableName="no-such-table", Key={"doc_id": {"S": "x"}})
    # AND the stream of the source table is read through the main endpoint too
    streams = _client(stack.info.aws_url, "dynamodbstreams")
    description = streams.describe_stream(StreamArn=stack.info.stream_arn)["StreamDescription"]
    assert description["StreamStatus"] == "ENABLED"


def test_other_services_stay_on_the_main_server(stack: LocalStack) -> None:
    assert stack.info is not None
    queues = _client(stack.info.aws_url, "sqs").list_queues()["QueueUrls"]
    assert any(url.endswith(NAMES.jobs_queue) for url in queues)
    # the child is a moto of its own: the stack's queues are not there
    assert not _client(stack.info.dynamodb_url, "sqs").list_queues().get("QueueUrls")


def test_the_pipeline_processes_see_the_child_endpoint(stack: LocalStack) -> None:
    assert stack.info is not None
    env = stack.info.env()
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == stack.info.dynamodb_url
    assert env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == stack.info.dynamodb_url
    assert stack.services().settings.dynamodb_endpoint == stack.info.dynamodb_url


def test_the_child_ends_with_its_owner() -> None:
    process = DynamoDbProcess(_free_port()).start()
    child = process._process
    assert child is not None and child.poll() is None
    process.stop()
    assert child.poll() is not None
    with contextlib.closing(socket.socket()) as sock:
        assert sock.connect_ex(("127.0.0.1", process.port)) != 0


def test_a_child_that_cannot_start_says_why() -> None:
    with contextlib.closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The port answers (someone else's server), so the child must fail to bind and exit.
        process = DynamoDbProcess(port, start_timeout_s=30)
        process.spawn()
        assert process._process is not None
        process._process.wait(timeout=30)
        with pytest.raises(DynembedError, match=f"DynamoDB server .*port {port}.* exited at start"):
            process.wait_ready()


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
