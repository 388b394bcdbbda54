"""HashingEmbedder: deterministic, unit-length, and similar texts really are closer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dynembed.core.ports import Embedder
from dynembed.embedders.hashing import HASH_DIMENSION, HashingEmbedder

pytestmark = pytest.mark.unit

SORTING = "Sorting a list in Python: call list.sort() to sort in place, or sorted() for a new sorted list."
HTTP = "To run an HTTP server, use http.server; it serves files from the current directory over the network."
QUERY = "How do I sort a list in Python?"


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_implements_the_embedder_port() -> None:
    # GIVEN / WHEN a hashing embedder typed as the port
    embedder: Embedder = HashingEmbedder()

    # THEN it satisfies the runtime protocol and names itself hash-256
    assert isinstance(embedder, Embedder)
    assert embedder.spec.name == "hash-256"
    assert embedder.spec.provider == "hash"
    assert embedder.spec.dimension == HASH_DIMENSION == 256
    assert embedder.spec.model_id == "hash/hash-256@1:256"


def test_same_text_gives_the_same_vector() -> None:
    # GIVEN two separate embedder instances
    first, second = HashingEmbedder(), HashingEmbedder()

    # WHEN both embed the same text
    # THEN the vectors are identical, bit for bit
    assert first.embed_documents([SORTING]) == second.embed_documents([SORTING])


def test_vectors_do_not_depend_on_the_process_hash_seed() -> None:
    # GIVEN two interpreters with different str-hash salts (what two Lambda containers have)
    script = (
        "import json; from dynembed.embedders.hashing import HashingEmbedder; "
        f"print(json.dumps(HashingEmbedder().embed_query({SORTING!r})))"
    )

    def run(seed: str) -> list[float]:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=True)
        return list(json.loads(out.stdout))

    # WHEN each embeds the same text
    # THEN they agree, and agree with this process
    assert run("1") == run("2") == HashingEmbedder().embed_query(SORTING)


# "sort" x2 and "list" x2 weigh 1 + ln 2, "quickly" weighs 1; then L2-normalised.
RECORDED_BUCKETS = {113: 0.385372, 119: -0.652491, 125: -0.652491}


def test_known_text_keeps_its_known_vector() -> None:
    # GIVEN a text whose vector was recorded when version 1 of the algorithm was written
    vector = np.array(HashingEmbedder().embed_query("Sorting lists sorts lists quickly"))

    # WHEN its non-zero buckets are read
    nonzero = {int(i): round(float(vector[i]), 6) for i in np.flatnonzero(vector)}

    # THEN they match the recording. If this fails the algorithm changed: bump
    # HASH_ALGORITHM_VERSION (stored vectors are now another space) and re-record.
    assert nonzero == RECORDED_BUCKETS


@pytest.mark.parametrize("text", [SORTING, "", "   \n\t", "!!! ???", "東京 タワー", "x" * 5000])
def test_every_vector_has_the_dimension_and_unit_length(text: str) -> None:
    # GIVEN any text, including empty and wordless ones (cosine spaces reject zero vectors)
    # WHEN it is embedded
    vector = HashingEmbedder().embed_query(text)

    # THEN it has 256 finite components and length 1
    assert len(vector) == HASH_DIMENSION
    assert np.all(np.isfinite(vector))
    assert np.linalg.norm(vector) == pytest.approx(1.0)


def test_shared_words_rank_the_relevant_text_first() -> None:
    # GIVEN a question about sorting and two passages, one on sorting and one on HTTP servers
    embedder = HashingEmbedder()
    sorting, http = embedder.embed_documents([SORTING, HTTP])

    # WHEN the question is embedded
    query = embedder.embed_query(QUERY)

    # THEN the sorting passage is clearly closer
    assert cosine(query, sorting) > cosine(query, http) + 0.2


def test_query_and_document_embeddings_are_the_same() -> None:
    # GIVEN the hashing embedder, which has no query/document distinction
    embedder = HashingEmbedder()

    # WHEN one text is embedded both ways
    # THEN the vectors are equal
    assert embedder.embed_query(QUERY) == embedder.embed_documents([QUERY])[0]


def test_batch_keeps_input_order() -> None:
    # GIVEN three different texts
    embedder = HashingEmbedder()
    texts = [SORTING, HTTP, QUERY]

    # WHEN embedded as a batch
    batch = embedder.embed_documents(texts)

    # THEN each vector is the one that text gets alone, in the same order; no texts, no vectors
    assert batch == [embedder.embed_query(text) for text in texts]
    assert embedder.embed_documents([]) == []


def test_case_and_punctuation_do_not_change_the_vector() -> None:
    # GIVEN the same words written differently
    embedder = HashingEmbedder()

    # WHEN embedded
    # THEN tokenisation (lower-cased words) makes them identical
    assert embedder.embed_query("Sort a LIST!") == embedder.embed_query("sort a list")
