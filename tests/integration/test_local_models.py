"""The real local models: they load offline, have their dimension, and retrieve sensibly.

Slow (MiniLM's first load imports torch: seconds). Throughput is printed, not asserted: run
``pytest -m models -s tests/integration/test_local_models.py`` to see it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from dynembed.core.ports import Embedder
from dynembed.embedders import get_embedder
from dynembed.embedders.local import MiniLMEmbedder, minilm_installed, static_installed

pytestmark = pytest.mark.models

CORPUS = Path(__file__).resolve().parents[2] / "data" / "python-faq" / "corpus.jsonl"
QUERY = "How do I sort a list in Python?"
ABOUT_SORTING = (
    "Use the sorted() built-in to get a new sorted list from any iterable, or call the list's "
    "sort() method to sort it in place. Both accept a key function and reverse=True."
)
ABOUT_HTTP = (
    "The http.server module defines classes for implementing HTTP servers. A request handler "
    "answers GET and POST requests from web clients over a socket."
)

# The models extra is part of every setup (`make setup`): a missing model fails these tests,
# it does not skip them.
MODELS = [("minilm", 384), ("static-64", 64)]


def test_the_models_extra_is_installed() -> None:
    assert minilm_installed() and static_installed(), "the models extra is missing: run `make setup`"


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def faq_texts(count: int = 200, chars: int = 600) -> list[str]:
    """Bodies of at least ``chars`` characters, cut to that length: realistic chunk-sized texts."""
    texts: list[str] = []
    with CORPUS.open() as lines:
        for line in lines:
            body = json.loads(line)["body"]
            if len(body) >= chars:
                texts.append(body[:chars])
            if len(texts) == count:
                break
    return texts


@pytest.mark.parametrize(("model_id", "dimension"), MODELS)
def test_model_loads_offline_with_its_dimension_and_unit_vectors(model_id: str, dimension: int) -> None:
    # GIVEN the model by its short id (conftest sets HF_HUB_OFFLINE=1: no download is possible)
    embedder: Embedder = get_embedder(model_id)

    # WHEN two documents, a blank one and a query are embedded
    documents = embedder.embed_documents([ABOUT_SORTING, ABOUT_HTTP, "", "  \n"])
    query = embedder.embed_query(QUERY)

    # THEN every vector has the spec's dimension and unit length (cosine spaces reject zeros)
    assert embedder.spec.dimension == dimension
    for vector in [*documents, query]:
        assert len(vector) == dimension
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(("model_id", "dimension"), MODELS)
def test_question_is_closer_to_the_passage_that_answers_it(model_id: str, dimension: int) -> None:
    # GIVEN a passage on sorting lists and one on HTTP servers
    embedder = get_embedder(model_id)
    sorting, http = embedder.embed_documents([ABOUT_SORTING, ABOUT_HTTP])

    # WHEN the sorting question is embedded
    query = embedder.embed_query(QUERY)

    # THEN the sorting passage is the closer one
    assert cosine(query, sorting) > cosine(query, http)


@pytest.mark.parametrize(("model_id", "dimension"), MODELS)
def test_batch_equals_one_by_one(model_id: str, dimension: int) -> None:
    # GIVEN texts of different lengths (batching pads them together)
    embedder = get_embedder(model_id)
    texts = [QUERY, ABOUT_SORTING, ABOUT_HTTP]

    # WHEN embedded as a batch and one at a time
    batch = np.array(embedder.embed_documents(texts))
    single = np.array([embedder.embed_documents([text])[0] for text in texts])

    # THEN the results agree (order kept, padding has no effect beyond float noise)
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_embedders_share_one_loaded_model() -> None:
    from dynembed.embedders import local

    # GIVEN two MiniLM embedders in one process
    first, second = MiniLMEmbedder(), MiniLMEmbedder(batch_size=8)
    # WHEN both embed
    first.embed_query("warm up")
    second.embed_query("no second load")
    # THEN the model was loaded once in this process (whichever test loaded it first), and both
    # embedders use that one copy
    info = local._load_minilm.cache_info()
    assert (info.misses, info.currsize) == (1, 1)
    assert info.hits >= 1


@pytest.mark.parametrize(("model_id", "dimension"), MODELS)
def test_throughput_on_faq_texts(model_id: str, dimension: int) -> None:
    # GIVEN 200 texts of 600 characters from the python-faq corpus, and a warmed-up model
    texts = faq_texts()
    embedder = get_embedder(model_id)
    embedder.embed_query("warm up")

    # WHEN they are embedded as one batch
    started = time.perf_counter()
    vectors = embedder.embed_documents(texts)
    elapsed = time.perf_counter() - started

    # THEN every text got a vector; the rate is reported, not asserted (machines differ)
    assert len(texts) == 200 and len(vectors) == 200
    print(f"\n{model_id}: {len(texts) / elapsed:,.1f} texts/s ({len(texts)} x {len(texts[0])} chars)")
