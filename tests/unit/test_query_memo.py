"""QueryMemo / QueryMemos (``dynembed.embedders.memo``): an evaluation's query vectors embedded
once per model and text, in batches; live-timed queries still embedded alone."""

from __future__ import annotations

import pytest

from dynembed.core.models import ModelSpec
from dynembed.embedders.counting import CountingEmbedder
from dynembed.embedders.hashing import HashingEmbedder, hash_vector
from dynembed.embedders.memo import QueryMemo, QueryMemos

pytestmark = pytest.mark.unit


def test_priming_embeds_the_unknown_texts_in_one_call_and_then_serves_them() -> None:
    counting = CountingEmbedder(HashingEmbedder())
    memo = QueryMemo(counting)
    memo.prime(["a b", "c d", "a b"])
    assert (counting.query_calls, counting.query_texts) == (1, 2)
    # A later batch embeds only what is new; single queries that are known cost nothing.
    vectors = memo.embed_queries(["c d", "e f", "a b"])
    assert memo.embed_query("a b") == hash_vector("a b").tolist()
    assert (counting.query_calls, counting.query_texts) == (2, 3)
    assert vectors == [hash_vector(t).tolist() for t in ("c d", "e f", "a b")]


def test_a_handed_out_vector_cannot_change_the_remembered_one() -> None:
    memo = QueryMemo(HashingEmbedder())
    memo.embed_query("x")[0] = 99.0
    assert memo.embed_query("x") == hash_vector("x").tolist()


def test_documents_pass_through_and_are_not_remembered() -> None:
    counting = CountingEmbedder(HashingEmbedder())
    memo = QueryMemo(counting)
    memo.embed_documents(["a"])
    memo.embed_documents(["a"])
    assert counting.document_texts == 2 and not memo.known("a")


def test_live_queries_are_embedded_alone_every_time_and_remembered() -> None:
    counting = CountingEmbedder(HashingEmbedder())
    memos = QueryMemos(lambda spec: counting)
    spec = counting.spec
    live = memos.live_embedder_for(spec)
    live.embed_query("q")
    live.embed_query("q")
    assert (counting.query_calls, counting.query_texts) == (2, 2)
    # The memo got the vector: a later search of the same text embeds nothing.
    memos.embedder_for(spec).embed_query("q")
    assert counting.query_calls == 2


def test_one_memo_per_model() -> None:
    built: list[str] = []

    def embedder_for(spec: ModelSpec) -> HashingEmbedder:
        built.append(spec.model_id)
        return HashingEmbedder()

    memos = QueryMemos(embedder_for)
    spec = HashingEmbedder().spec
    assert memos.embedder_for(spec) is memos.embedder_for(spec)
    assert built == [spec.model_id]
