"""The Embedder port's contract, on every embedder dynembed ships: feature hashing, the two local
models (``models``: they load real weights), Titan and Cohere on a fake ``bedrock-runtime``
client, and the counting wrapper. ``embed_queries`` (a golden set in one call) must give each
text the vector ``embed_query`` gives it alone: evaluations batch their queries, and their
figures must not move because of it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from dynembed.core.ports import Embedder
from dynembed.embedders.bedrock import COHERE_MAX_TEXTS, CohereEmbedder, TitanEmbedder
from dynembed.embedders.counting import CountingEmbedder
from dynembed.embedders.hashing import HashingEmbedder
from dynembed.embedders.local import MiniLMEmbedder, StaticEmbedder
from tests.fakes import FakeBedrockRuntime

QUERIES = [
    "How do I sort a list in Python?",
    "what is a lambda",
    "Why does my loop skip items when I remove them from the list while iterating over it?",
    "how do I sort a list in python?",
    "",
    "How do I sort a list in Python?",
]
"""Short and long (padding in a batch must not change a vector), near duplicates, a repeat and
a blank one."""

MAKERS: dict[str, Callable[[], Embedder]] = {
    "hash": HashingEmbedder,
    "static": StaticEmbedder,
    "minilm": MiniLMEmbedder,
    "titan": lambda: TitanEmbedder(256, client=FakeBedrockRuntime()),
    "cohere": lambda: CohereEmbedder(client=FakeBedrockRuntime()),
    "counting": lambda: CountingEmbedder(HashingEmbedder()),
}
LOADS_A_MODEL = {"static", "minilm"}


@pytest.fixture(
    params=[
        pytest.param(name, id=name, marks=pytest.mark.models if name in LOADS_A_MODEL else pytest.mark.unit)
        for name in MAKERS
    ]
)
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return MAKERS[request.param]()


def test_it_implements_the_port(embedder: Embedder) -> None:
    assert isinstance(embedder, Embedder)


def test_a_batch_of_queries_gives_each_the_vector_it_gets_alone(embedder: Embedder) -> None:
    # WHEN the queries are embedded in one call, and each alone
    batch = embedder.embed_queries(QUERIES)
    alone = [embedder.embed_query(text) for text in QUERIES]
    # THEN one vector per query, in order, of the model's dimension, equal to the one it gets alone
    assert len(batch) == len(QUERIES)
    assert all(len(vector) == embedder.spec.dimension for vector in batch)
    np.testing.assert_allclose(np.asarray(batch), np.asarray(alone), rtol=0, atol=1e-5)
    # AND a repeated text gets the same vector, different texts different ones
    assert np.allclose(batch[0], batch[5], atol=1e-6)
    assert not np.allclose(batch[0], batch[1], atol=1e-3)


def test_no_queries_give_no_vectors(embedder: Embedder) -> None:
    assert embedder.embed_queries([]) == []


def test_documents_keep_their_order_and_dimension(embedder: Embedder) -> None:
    texts = ["first passage about sorting", "second passage about HTTP servers"]
    vectors = embedder.embed_documents(texts)
    assert len(vectors) == 2 and all(len(v) == embedder.spec.dimension for v in vectors)
    np.testing.assert_allclose(vectors[0], embedder.embed_documents(texts[:1])[0], rtol=0, atol=1e-5)


# ---- what the contract cannot see from outside ------------------------------------------------


@pytest.mark.unit
def test_cohere_types_a_batch_of_queries_as_search_queries_96_per_call() -> None:
    client = FakeBedrockRuntime()
    embedder = CohereEmbedder(client=client)
    texts = [f"query {n}" for n in range(COHERE_MAX_TEXTS + 1)]
    embedder.embed_queries(texts)
    assert [(b["input_type"], len(b["texts"])) for b in client.bodies] == [
        ("search_query", COHERE_MAX_TEXTS),
        ("search_query", 1),
    ]
    # A query's vector is not its document vector: the input type reached the model.
    assert not np.allclose(embedder.embed_queries(["x"])[0], embedder.embed_documents(["x"])[0])


@pytest.mark.unit
def test_titan_embeds_a_batch_of_queries_one_call_per_text() -> None:
    client = FakeBedrockRuntime()
    TitanEmbedder(256, client=client).embed_queries(["a", "b", "c"])
    assert sorted(b["inputText"] for b in client.bodies) == ["a", "b", "c"]
    assert all(b["dimensions"] == 256 and b["normalize"] for b in client.bodies)


@pytest.mark.unit
def test_counting_counts_a_batch_of_queries_as_one_call_of_many_texts() -> None:
    counting = CountingEmbedder(HashingEmbedder())
    counting.embed_queries(["ab", "cde"])
    counting.embed_query("f")
    assert (counting.query_calls, counting.query_texts, counting.query_chars) == (2, 3, 6)
    assert (counting.texts, counting.chars, counting.document_texts) == (3, 6, 0)
