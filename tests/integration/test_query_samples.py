"""The query-sample store on DynamoDB (moto): one partition per generation or candidate, a
window is one Query (newest kept when limited, returned oldest first), expired items are left
out before DynamoDB's TTL sweep removes them, and each item carries its TTL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dynembed.adapters.samples import DynamoQuerySamples
from dynembed.core.config import KEYS
from dynembed.core.samples import QuerySample, QueryText, ShadowComparison

pytestmark = pytest.mark.integration


@pytest.fixture
def resource(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        boto3.client("dynamodb", region_name=region).create_table(
            TableName="samples",
            KeySchema=[
                {"AttributeName": KEYS.samples_hash, "KeyType": "HASH"},
                {"AttributeName": KEYS.samples_range, "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": KEYS.samples_hash, "AttributeType": "S"},
                {"AttributeName": KEYS.samples_range, "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield boto3.resource("dynamodb", region_name=region)


def _sample(generation: str, at: float, text: str = "q") -> QuerySample:
    return QuerySample(
        generation=generation,
        at=at,
        query=QueryText.of(text, keep=False),
        best_score=0.5,
        results=3,
        latency_ms=4.0,
    )


def test_samples_by_generation_window_and_limit(resource: Any) -> None:
    now = [10_000.0]
    store = DynamoQuerySamples("samples", ttl_s=3600, resource=resource, clock=lambda: now[0])
    for n in range(5):
        store.put_sample(_sample("g1", 9_000.0 + n, f"q{n}"))
    store.put_sample(_sample("g2", 9_001.0))
    assert [s.at for s in store.samples("g1")] == [9_000.0, 9_001.0, 9_002.0, 9_003.0, 9_004.0]
    assert [s.at for s in store.samples("g1", since=9_002.0)] == [9_002.0, 9_003.0, 9_004.0]
    assert [s.at for s in store.samples("g1", limit=2)] == [9_003.0, 9_004.0]  # the newest two
    assert len(store.samples("g2")) == 1
    item = resource.Table("samples").scan()["Items"][0]
    assert int(item[KEYS.samples_ttl]) == 10_000 + 3600
    # WHEN the TTL has passed (DynamoDB deletes within days, not at once)
    now[0] = 20_000.0
    # THEN reads leave the expired samples out
    assert store.samples("g1") == []


def test_comparisons_by_candidate(resource: Any) -> None:
    store = DynamoQuerySamples("samples", ttl_s=3600, resource=resource, clock=lambda: 10_000.0)
    comparison = ShadowComparison(
        candidate="c1",
        active="g1",
        at=9_999.0,
        query=QueryText.of("text", keep=True),
        overlap=0.5,
        rbo=0.4,
        active_results=10,
        candidate_results=9,
    )
    store.put_comparison(comparison)
    assert store.comparisons("c1") == [comparison]
    assert store.comparisons("g1") == [] and store.samples("c1") == []
