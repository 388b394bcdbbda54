"""The registry on DynamoDB (moto) keeps a generation's retrieval and vector settings, its
trained quantizer and its calibrated threshold; rows written before they existed read back
as vector retrieval at float32."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import numpy as np
import pytest
from moto import mock_aws

from dynembed.adapters.dynamodb.registry import DynamoRegistry
from dynembed.core.models import ChunkerSpec, ModelSpec, RetrievalSpec, ScoreThreshold, VectorSpec
from dynembed.index import quantize
from dynembed.rebuild.generations import new_generation

pytestmark = pytest.mark.integration

SPEC = ModelSpec(provider="hash", name="hash-256", dimension=8)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoRegistry]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        boto3.client("dynamodb", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1")).create_table(
            TableName="registry",
            KeySchema=[{"AttributeName": "generation_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "generation_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoRegistry("registry", region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def test_settings_quantizer_and_threshold_round_trip(registry: DynamoRegistry) -> None:
    # GIVEN a hybrid, binary on-disk generation
    gen = new_generation(
        SPEC,
        ChunkerSpec(),
        "chunks",
        generation_id="g-hybrid",
        retrieval=RetrievalSpec(mode="hybrid", fusion="rrf"),
        vectors=VectorSpec(precision="binary", on_disk=True, oversample=3.0),
    )
    registry.create(gen)
    # WHEN its quantizer is trained and its threshold calibrated
    state = quantize.train(
        gen.vectors.precision, np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    )
    threshold = ScoreThreshold(
        value=0.61, method="f1", precision=0.9, recall=0.8, f1=0.85, queries=30, relevant_top1=25
    )
    registry.update(gen.id, quantizer=state)
    updated = registry.update(gen.id, threshold=threshold)
    # THEN every field reads back equal, from the update's answer and from a fresh read
    for read in (updated, registry.get(gen.id), registry.list()[0]):
        assert (read.retrieval, read.vectors) == (gen.retrieval, gen.vectors)
        assert read.quantizer == state and read.threshold == threshold
    # AND a threshold can be cleared (a re-evaluation that could not calibrate)
    assert registry.update(gen.id, threshold=None).threshold is None


def test_rows_from_before_the_settings_read_as_vector_float32(registry: DynamoRegistry) -> None:
    gen = new_generation(SPEC, ChunkerSpec(), "chunks", generation_id="g-old")
    registry.create(gen)
    row = registry.model.get("g-old")
    row.update(actions=[registry.model.retrieval.remove(), registry.model.vectors.remove()])
    old = registry.get("g-old")
    assert old.retrieval == RetrievalSpec() and old.vectors == VectorSpec()
    assert old.quantizer is None and old.threshold is None
