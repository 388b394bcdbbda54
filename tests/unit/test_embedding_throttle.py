"""The adaptive rate limiter (embedders/throttle.py) on a virtual clock, the Titan adapter's
partial results when a text stays throttled, and reconcile keeping them in the cache."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dynembed.core.errors import EmbeddingIncomplete, TransientError
from dynembed.core.models import ChunkerSpec, ReconcileJob
from dynembed.core.schema import SourceSchema
from dynembed.embedders.bedrock import RetryPolicy, TitanEmbedder
from dynembed.embedders.catalog import spec_for
from dynembed.embedders.throttle import REQUESTS, TOKENS, AdaptiveRateLimiter, throttle_kind
from dynembed.rebuild.generations import new_generation
from dynembed.sync.chunking import chunker_for
from dynembed.sync.reconcile import Reconciler
from tests.fakes import InMemoryCache, InMemoryIndex, InMemoryLedger, InMemoryRegistry, InMemorySource

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: Clock, **options: Any) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(clock=clock, sleep=clock.sleep, **options)


def test_calls_are_paced_by_the_tighter_of_the_two_budgets() -> None:
    clock = Clock()
    limit = limiter(clock, requests_per_s=10, tokens_per_s=100)
    # WHEN five 50-token calls ask for slots at once
    starts = [limit.acquire(50) for _ in range(5)]
    # THEN the token budget (100/s) spaces them 0.5 s apart, not the request budget's 0.1 s
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])


def test_a_throttle_cuts_once_per_congestion_event_and_only_the_named_budget() -> None:
    clock = Clock()
    limit = limiter(clock, requests_per_s=20, tokens_per_s=10_000, recovery_s=8, hold_s=2)
    sent = [limit.acquire(10) for _ in range(20)]  # one second of calls at 20/s
    before = limit.requests_per_s
    # WHEN every one of them is throttled for "too many requests"
    for at in sent:
        limit.on_throttle(at, REQUESTS)
    # THEN the request budget is cut once, to 0.9 of what was really sent, the token one not at all
    assert limit.stats.cuts == {REQUESTS: 1, TOKENS: 0}
    assert limit.requests_per_s == pytest.approx(0.9 * min(before, 20), rel=0.1)
    assert limit.tokens_per_s == 10_000
    # AND a call sent after the hold is cut again
    clock.now += 3
    limit.on_throttle(limit.acquire(10), REQUESTS)
    assert limit.stats.cuts[REQUESTS] == 2


def test_after_a_cut_the_rate_climbs_back_linearly_in_the_recovery_time() -> None:
    clock = Clock()
    limit = limiter(clock, requests_per_s=50, tokens_per_s=1e9, max_requests_per_s=1000, recovery_s=10)
    for _ in range(20):
        limit.acquire(1)
    limit.on_throttle(clock.now, REQUESTS)
    cut = limit.requests_per_s
    clock.now += 10  # past the hold
    # WHEN calls succeed at the cut rate for one recovery time
    start = clock.now
    while clock.now < start + 10:
        limit.on_success(limit.acquire(1), 1)
    # THEN the rate is back near the rate before the cut (cut / 0.9), not doubled
    assert limit.requests_per_s == pytest.approx(cut / 0.9, rel=0.1)


def test_slow_start_doubles_up_to_twice_the_share_and_never_past_the_quota() -> None:
    clock = Clock()
    limit = limiter(clock, requests_per_s=5, tokens_per_s=1e6, max_requests_per_s=8)
    for _ in range(40):
        limit.on_success(limit.acquire(1), 1)
    assert limit.requests_per_s == 8  # doubled to 10, capped at the configured quota
    free = limiter(Clock(), requests_per_s=2, tokens_per_s=1e6)
    for _ in range(200):
        free.on_success(free.acquire(1), 1)
    assert free.requests_per_s >= 64  # no quota known: slow start goes on until a throttle


def test_throttle_messages_name_their_budget() -> None:
    assert throttle_kind("Too many tokens, please wait before trying again.") == TOKENS
    assert throttle_kind("Too many requests, please wait before trying again.") == REQUESTS
    assert throttle_kind("Rate exceeded") is None


class OneTextAlwaysThrottled:
    """A Bedrock client that embeds every text but one, which it always throttles."""

    def __init__(self, stuck: str) -> None:
        self.stuck = stuck
        self.calls: dict[str, int] = {}

    def invoke_model(self, *, modelId: str, body: str, contentType: str, accept: str) -> dict[str, Any]:
        text = json.loads(body)["inputText"]
        self.calls[text] = self.calls.get(text, 0) + 1
        if text == self.stuck:
            raise ClientError(
                {
                    "Error": {"Code": "ThrottlingException", "Message": "Too many tokens"},
                    "ResponseMetadata": {"HTTPStatusCode": 429},
                },
                "InvokeModel",
            )
        return {"body": io.BytesIO(json.dumps({"embedding": [1.0] + [0.0] * 255}).encode())}


def test_a_text_that_stays_throttled_does_not_waste_the_others() -> None:
    # GIVEN four texts, one of which the provider throttles on every attempt
    client = OneTextAlwaysThrottled("c")
    embedder = TitanEmbedder(
        256, client=client, max_workers=4, retry=RetryPolicy(max_attempts=3), sleep=lambda _s: None
    )
    # WHEN the batch is embedded
    with pytest.raises(EmbeddingIncomplete) as error:
        embedder.embed_documents(["a", "b", "c", "d"])
    # THEN it is a transient error (the job is retried) carrying the three vectors made
    assert isinstance(error.value, TransientError)
    assert sorted(error.value.vectors) == [0, 1, 3]
    # AND the stuck text was tried exactly max_attempts times, the others once
    assert client.calls == {"a": 1, "b": 1, "c": 3, "d": 1}
    assert embedder.stats.throttled == 3 and embedder.stats.gave_up == 1


def test_reconcile_keeps_the_vectors_of_an_incomplete_batch_in_the_cache() -> None:
    # GIVEN a doc of several chunks and an embedder that throttles one of them for good
    schema = SourceSchema(content_attributes=("title", "body"), access_attributes=("acl",))
    body = "\n\n".join(f"Paragraph {n}. " + "words " * 60 for n in range(4))
    source = InMemorySource(
        items={"d1": {"doc_id": "d1", "version": 1, "title": "T", "body": body, "acl": ["public"]}}
    )
    gen = new_generation(
        spec_for("bedrock-titan-v2-256"), ChunkerSpec(target_chars=300, max_chars=600, min_chars=100), "idx"
    )
    registry, index, cache = InMemoryRegistry(), InMemoryIndex(), InMemoryCache()
    registry.put(gen.model_copy(update={"write_target": True}))
    index.ensure_index(gen)
    chunks = chunker_for(gen.chunker).chunk(schema.content_of(source.items["d1"]))
    assert len(chunks) >= 3
    client = OneTextAlwaysThrottled(chunks[1].text)
    embedder = TitanEmbedder(
        256, client=client, max_workers=4, retry=RetryPolicy(max_attempts=2), sleep=lambda _s: None
    )
    reconciler = Reconciler(
        schema, source, InMemoryLedger(), registry, index, lambda _spec: embedder, cache=cache
    )
    # WHEN the doc is reconciled
    [outcome] = reconciler.reconcile([ReconcileJob(doc_id="d1", min_source_version=1)])
    # THEN the job failed transiently (SQS retries it), and every other chunk's vector is cached
    assert isinstance(outcome.error, TransientError)
    cached = cache.get_many(gen.model.model_id, [c.content_hash for c in chunks])
    assert set(cached) == {c.content_hash for c in chunks} - {chunks[1].content_hash}
