"""The request meter (dynembed_ops.local.meter) on a real moto server: read and write units
from the items' sizes by DynamoDB's rules, SQS requests by 64 KB chunk, empty receives apart,
nothing counted while paused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from dynembed_ops.local.meter import RequestMeter
from dynembed_ops.local.stack import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[str, RequestMeter]]:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    meter = RequestMeter()
    assert server._server is not None
    server._server.app = meter.wsgi(server._server.app)  # type: ignore[assignment]
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}", meter
    server.stop()


def client(url: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def test_dynamodb_units_follow_item_sizes(moto: tuple[str, RequestMeter]) -> None:
    url, meter = moto
    ddb = client(url, "dynamodb")
    with meter.paused():
        ddb.create_table(
            TableName="sized",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    meter.reset()
    # WHEN a ~3 KB item is written, read consistently and eventually, grown to ~5 KB, deleted
    ddb.put_item(TableName="sized", Item={"id": {"S": "a"}, "body": {"S": "x" * 3000}})
    after_put = meter.snapshot()["units"]
    ddb.get_item(TableName="sized", Key={"id": {"S": "a"}}, ConsistentRead=True)
    ddb.get_item(TableName="sized", Key={"id": {"S": "a"}})
    ddb.get_item(TableName="sized", Key={"id": {"S": "missing"}}, ConsistentRead=True)
    after_reads = meter.snapshot()["units"]
    ddb.update_item(
        TableName="sized",
        Key={"id": {"S": "a"}},
        UpdateExpression="SET body = :b",
        ExpressionAttributeValues={":b": {"S": "y" * 5000}},
    )
    after_update = meter.snapshot()["units"]
    ddb.delete_item(TableName="sized", Key={"id": {"S": "a"}})
    done = meter.snapshot()
    # THEN writes cost 1 KB units of the larger image, reads 4 KB units (half when eventual),
    # a missing item the minimum
    assert after_put["dynamodb_wru"] == 3
    assert after_reads["dynamodb_rru"] == 1 + 0.5 + 1
    assert after_update["dynamodb_wru"] == 3 + 5
    assert done["units"]["dynamodb_wru"] == 3 + 5 + 5
    assert done["requests"]["DynamoDB.GetItem"] == 3


def test_a_scan_page_is_charged_for_what_it_evaluated(moto: tuple[str, RequestMeter]) -> None:
    url, meter = moto
    ddb = client(url, "dynamodb")
    with meter.paused():
        for n in range(10):
            ddb.put_item(
                TableName="sized", Item={"id": {"S": f"s{n}"}, "body": {"S": "z" * 2000}, "n": {"N": str(n)}}
            )
    meter.reset()
    # WHEN a scan filters 10 items of ~2 KB down to 1
    ddb.scan(TableName="sized", FilterExpression="n = :n", ExpressionAttributeValues={":n": {"N": "3"}})
    # THEN it is charged for ~20 KB evaluated (eventually consistent: half of 5 units), not 2 KB
    assert meter.snapshot()["units"]["dynamodb_rru"] == 2.5


def test_sqs_requests_are_billed_by_64_kb_chunk_and_empty_receives_apart(
    moto: tuple[str, RequestMeter],
) -> None:
    url, meter = moto
    sqs = client(url, "sqs")
    with meter.paused():
        queue = sqs.create_queue(QueueName="metered")["QueueUrl"]
    meter.reset()
    sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": str(n), "MessageBody": json.dumps({"pad": "p" * 20_000})} for n in range(10)],
    )
    units = meter.snapshot()["units"]
    assert units["sqs_empty_receives"] == 1
    assert units["sqs_requests"] == 4  # ~200 KB of bodies: four 64 KB chunks


def test_nothing_is_counted_while_paused(moto: tuple[str, RequestMeter]) -> None:
    url, meter = moto
    meter.reset()
    with meter.paused():
        client(url, "dynamodb").get_item(TableName="sized", Key={"id": {"S": "s1"}})
    assert meter.snapshot() == {"requests": {}, "units": {}}
