"""The reproductions of issue #9, as the AWS CLI made them, on moto's real DynamoDB Streams
records and boto3's item types (Decimal numbers, number sets, Binary), with the index on
osmem-server: access and deletes fail closed, and every wrongly typed attribute is refused
naming the doc and the attribute."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from opensearchpy import OpenSearch

from dynembed.adapters.dynamodb.source import DynamoSourceReader
from dynembed.core.errors import MalformedRecordError
from dynembed.core.models import ReconcileJob
from dynembed.index.opensearch import OpenSearchChunkIndex
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.integration

TABLE = "source"
BODY = {"S": paragraphs("alpha", "bravo", "charlie", size=20)}


class SourceTable:
    """The source table as the AWS CLI sees it (typed attributes), and its stream as Lambda
    delivers it (binary base64-encoded, times in epoch seconds)."""

    def __init__(self) -> None:
        region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        self.ddb = boto3.client("dynamodb", region_name=region)
        self.streams = boto3.client("dynamodbstreams", region_name=region)
        arn = self.ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "doc_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "doc_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self.iterator: str | None = self.streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def put(self, doc_id: str, **attrs: dict[str, Any]) -> None:
        self.ddb.put_item(TableName=TABLE, Item={"doc_id": {"S": doc_id}, **attrs})

    def delete(self, doc_id: str) -> None:
        self.ddb.delete_item(TableName=TABLE, Key={"doc_id": {"S": doc_id}})

    def records(self) -> list[dict[str, Any]]:
        """Every record written since the last call, shaped like Lambda's event records."""
        out: list[dict[str, Any]] = []
        while self.iterator:
            response = self.streams.get_records(ShardIterator=self.iterator)
            self.iterator = response.get("NextShardIterator")
            if not response["Records"]:
                break
            out += [json.loads(json.dumps(r, default=_lambda_json)) for r in response["Records"]]
        return out


def _lambda_json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(type(value).__name__)


@pytest.fixture
def setup(
    opensearch_client: OpenSearch, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SourceTable, Harness]]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    prefix = f"failclosed-{uuid.uuid4().hex[:8]}"
    with mock_aws():
        table = SourceTable()
        h = Harness(
            source=DynamoSourceReader(TABLE, "doc_id", region="us-east-1"),
            index=OpenSearchChunkIndex(opensearch_client, knn_mode="exact"),
            index_prefix=prefix,
            alias=f"{prefix}-alias",
        )
        yield table, h
    opensearch_client.indices.delete(index=f"{prefix}-*", ignore_unavailable=True)


def deliver(table: SourceTable, h: Harness) -> list[ReconcileJob]:
    return h.classify(table.records())


def sync_all(table: SourceTable, h: Harness) -> None:
    outcomes = h.sync(deliver(table, h))
    assert all(o.ok for o in outcomes), [str(o.error) for o in outcomes]


def readers(h: Harness, doc_id: str) -> set[str]:
    return {p for c in h.indexed().values() if c["doc_id"] == doc_id for p in c["acl"]}


def n(value: int | str) -> dict[str, str]:
    return {"N": str(value)}


def acl(*principals: str) -> dict[str, list[str]]:
    return {"SS": list(principals)}


# ---- item 1: access and deletes fail closed ---------------------------------------------------------
def test_version_going_back_with_a_narrower_acl_revokes_bob(setup: tuple[SourceTable, Harness]) -> None:
    table, h = setup
    # GIVEN v5 readable by alice and bob, indexed
    table.put("d1", version=n(5), title={"S": "T"}, body=BODY, acl=acl("alice", "bob"))
    sync_all(table, h)
    assert readers(h, "d1") == {"alice", "bob"}
    # WHEN the app puts v4 readable by alice only
    table.put("d1", version=n(4), title={"S": "T"}, body=BODY, acl=acl("alice"))
    deliver(table, h)
    # THEN bob finds nothing once classify returns (the doc is hidden), and the audit says so
    assert "bob" not in readers(h, "d1")
    assert h.services().audit().totals()["missing_documents"] == 1


def test_malformed_write_between_two_good_ones(setup: tuple[SourceTable, Harness]) -> None:
    table, h = setup
    table.put("d1", version=n(2), title={"S": "T"}, body=BODY, acl=acl("alice", "bob"))
    sync_all(table, h)
    # WHEN version "abc" for alice only, then v3 for alice only
    table.put("d1", version={"S": "abc"}, title={"S": "T"}, body=BODY, acl=acl("alice"))
    deliver(table, h)
    assert readers(h, "d1") == set()  # the current item is unreadable: hidden
    assert "version attribute 'version'" in h.dead_letters.sent[0]["reason"]
    table.put("d1", version=n(3), title={"S": "T"}, body=BODY, acl=acl("alice"))
    sync_all(table, h)
    # THEN v3 is applied (its malformed old image does not reject it): alice only
    assert readers(h, "d1") == {"alice"}


def test_write_without_a_version_then_delete_item(setup: tuple[SourceTable, Harness]) -> None:
    table, h = setup
    table.put("d1", version=n(1), title={"S": "T"}, body=BODY, acl=acl("public"))
    sync_all(table, h)
    table.put("d1", title={"S": "T"}, body={"S": "edited, no version"}, acl=acl("public"))
    table.delete("d1")
    jobs = deliver(table, h)
    # THEN the deleted doc is not searchable once classify returns, with no audit needed
    assert jobs == []
    assert h.indexed() == {}


# ---- item 2: strict attribute types -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param({"acl": {"M": {"alice": {"BOOL": True}}}}, "access attribute 'acl' must be a string set (SS), a list of strings (L) or a string (S), not a map (M)", id="acl map"),
        pytest.param({"acl": n(5)}, "not a number (N)", id="acl number"),
        pytest.param({"acl": {"NS": ["1", "2"]}}, "not a number set (NS)", id="acl number set"),
        pytest.param({"acl": {"B": b"alice"}}, "not binary (B)", id="acl binary"),
        pytest.param({"tenant": {"M": {"name": {"S": "acme"}}}}, "tenant attribute 'tenant' must be a string (S), not a map (M)", id="tenant map"),
        pytest.param({"body": n(42)}, "content attribute 'body' must be a string (S), not a number (N)", id="body number"),
        pytest.param({"version": n("1E+30")}, "version attribute 'version' is 1E+30, above 2305843009213693951", id="version 1e30"),
    ],
)  # fmt: skip
def test_wrongly_typed_attributes_are_refused_naming_doc_and_attribute(
    setup: tuple[SourceTable, Harness], bad: dict[str, Any], message: str
) -> None:
    table, h = setup
    # GIVEN an indexed doc
    table.put("d1", version=n(1), title={"S": "T"}, body=BODY, acl=acl("alice"), tenant={"S": "acme"})
    sync_all(table, h)
    # WHEN the app writes it again with one attribute of the wrong type
    item = {"version": n(2), "title": {"S": "T"}, "body": BODY, "acl": acl("alice"), "tenant": {"S": "acme"}}
    table.put("d1", **{**item, **bad})
    jobs = deliver(table, h)
    # THEN its chunks are hidden at once, no job reaches sync, and the record is dead-lettered
    # with a reason naming the doc and the attribute (never a Python repr)
    assert h.indexed() == {}
    assert jobs == []
    [letter] = h.dead_letters.sent
    assert letter["doc_id"] == "d1" and message in letter["reason"]
    assert "Decimal(" not in letter["reason"] and "{'" not in letter["reason"]
    # AND reprocessing it reports the same, instead of indexing a map's keys or crashing
    [outcome] = h.sync([ReconcileJob(doc_id="d1", min_source_version=0, reason="reprocess", force=True)])
    assert isinstance(outcome.error, MalformedRecordError) and message in str(outcome.error)
    assert h.indexed() == {}


def test_an_unversioned_item_does_not_break_the_audit(setup: tuple[SourceTable, Harness]) -> None:
    table, h = setup
    table.put("good", version=n(1), title={"S": "T"}, body=BODY, acl=acl("public"))
    table.put("nover", title={"S": "T"}, body=BODY, acl=acl("public"))
    h.sync(deliver(table, h))  # the unversioned record is dead-lettered
    # WHEN the audit (and the status command, which runs it) scans the real table
    report = h.services().audit(queue=h.queue, repair=True)
    # THEN it completes and reports the item
    assert report.complete and report.malformed_items == 1
    assert "doc 'nover': missing version attribute 'version'" in report.malformed_examples[0]


# ---- item 3: freshness without updated_at -------------------------------------------------------------
def test_an_item_without_updated_at_is_timed_by_the_stream_record(setup: tuple[SourceTable, Harness]) -> None:
    table, h = setup
    # GIVEN the README's own example item: no updated_at
    table.put("hello", version=n(1), title={"S": "Hello"}, body=BODY, acl=acl("public"))
    # WHEN it is synced
    sync_all(table, h)
    # THEN freshness is measured for it, from the record's ApproximateCreationDateTime
    assert len(h.telemetry.freshness_s) == 1 and 0 <= h.telemetry.freshness_s[0] < 60
