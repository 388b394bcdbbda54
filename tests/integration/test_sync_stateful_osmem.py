"""The sync state machine of tests/unit/test_sync_stateful.py, on real adapters: the ledger and
registry on DynamoDB (moto, through pynamodb) and the index on osmem-server (external versions,
exact k-NN). Same operations, same delivery faults, same independent oracle: after draining,
0 stale, 0 orphaned, 0 missing, 0 duplicate."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import boto3
import pytest
from hypothesis import HealthCheck, settings
from moto import mock_aws
from opensearchpy import OpenSearch

from dynembed.adapters.dynamodb.ledger import DynamoLedger
from dynembed.adapters.dynamodb.registry import DynamoRegistry
from dynembed.index.opensearch import OpenSearchChunkIndex
from tests.fakes import FaultyIndex
from tests.harness import Harness
from tests.unit.test_sync_stateful import SyncMachine

pytestmark = pytest.mark.integration
_counter = itertools.count()
REGION = "us-east-1"


@pytest.fixture
def real_adapters(opensearch_client: OpenSearch, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        SyncOnRealAdapters.client = opensearch_client
        yield


class SyncOnRealAdapters(SyncMachine):
    client: OpenSearch

    def make_harness(self) -> Harness:
        n = next(_counter)
        ddb = boto3.client("dynamodb", region_name=REGION)
        for name, keys in [
            (f"ledger{n}", [("doc_id", "HASH"), ("generation", "RANGE")]),
            (f"registry{n}", [("generation_id", "HASH")]),
        ]:
            ddb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
                AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
                BillingMode="PAY_PER_REQUEST",
            )
        return Harness(
            ledger=DynamoLedger(f"ledger{n}", region=REGION),
            registry=DynamoRegistry(f"registry{n}", region=REGION),
            index=FaultyIndex(OpenSearchChunkIndex(self.client, knn_mode="exact")),
            index_prefix=f"stateful{n}",
            alias=f"stateful{n}-alias",
        )


def test_sync_converges_on_moto_and_osmem(real_adapters: None) -> None:
    examples = int(os.environ.get("DYNEMBED_STATEFUL_EXAMPLES_REAL", "40"))
    SyncOnRealAdapters.TestCase.settings = settings(
        max_examples=examples, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
    )
    SyncOnRealAdapters.TestCase().runTest()
