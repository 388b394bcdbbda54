"""Exact k-NN through OpenSearchChunkIndex(knn_mode="exact") on osmem: right top-k under the
access filter, and a cache that notices every kind of change, made by any writer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from opensearchpy import OpenSearch

from dynembed.core.errors import DynembedError, ModelMismatchError
from dynembed.core.models import ChunkDocument
from dynembed.index.exact import ExactKnnCache
from dynembed.index.filter_eval import UnsupportedFilterError
from dynembed.index.filters import access_filter
from dynembed.index.opensearch import OpenSearchChunkIndex
from tests.plugins.osmem import chunk_doc, generation_for

pytestmark = pytest.mark.integration

DIM = 16
GROUPS = [f"g{i}" for i in range(6)]


@pytest.fixture
def searcher(opensearch_client: OpenSearch) -> OpenSearchChunkIndex:
    return OpenSearchChunkIndex(opensearch_client, knn_mode="exact")


@pytest.fixture
def writer(opensearch_client: OpenSearch) -> OpenSearchChunkIndex:
    """A second adapter instance, standing in for another process that writes."""
    return OpenSearchChunkIndex(opensearch_client, knn_mode="exact")


def random_corpus(n: int, seed: int = 7) -> list[ChunkDocument]:
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        acl = list(rng.choice(GROUPS, size=int(rng.integers(1, 3)), replace=False))
        docs.append(
            chunk_doc(
                f"d{i}",
                rng.standard_normal(DIM).tolist(),
                acl=acl,
                tenant="acme" if i % 4 else "other",
                metadata={"lang": "en" if i % 3 else "fr", "year": 2000 + i % 25},
            )
        )
    return docs


def reference_top_k(
    docs: list[ChunkDocument], query: list[float], k: int, allowed: Callable[[ChunkDocument], bool]
) -> list[tuple[str, float]]:
    """Brute force with numpy on the original vectors: what exact search must return."""
    q = np.asarray(query) / np.linalg.norm(query)
    scored = []
    for doc in docs:
        if allowed(doc):
            v = np.asarray(doc.embedding)
            scored.append((doc.id, (1 + float(v @ q) / float(np.linalg.norm(v))) / 2))
    scored.sort(key=lambda item: (-item[1], item[0]))
    return scored[:k]


@pytest.fixture
def loaded(
    searcher: OpenSearchChunkIndex, writer: OpenSearchChunkIndex, index_name: str
) -> list[ChunkDocument]:
    writer.ensure_index(generation_for(index_name, dimension=DIM))
    docs = random_corpus(300)
    assert writer.write_chunks(index_name, docs).written == 300
    return docs


def test_exact_top_k_matches_brute_force_under_the_access_filter(
    searcher: OpenSearchChunkIndex, loaded: list[ChunkDocument], index_name: str
) -> None:
    # GIVEN 300 chunks with random ACLs, tenants and metadata
    rng = np.random.default_rng(1)
    for _ in range(5):
        query = rng.standard_normal(DIM).tolist()
        principal = ["g1", "g4"]
        filt = access_filter(principal, "acme", extra={"lang": "en", "year": {"gte": 2010}})

        # WHEN searching exactly for the top 10
        hits = searcher.knn_search(index_name, query, 10, filt)

        # THEN ids, order and OpenSearch-style scores equal a numpy brute force over permitted docs
        expected = reference_top_k(
            loaded,
            query,
            10,
            lambda d: (
                bool(set(d.acl) & {"g1", "g4", "public"})
                and d.tenant == "acme"
                and d.metadata["lang"] == "en"
                and d.metadata["year"] >= 2010
            ),
        )
        assert [h.id for h in hits] == [doc_id for doc_id, _ in expected]
        assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-5)


def test_a_denied_chunk_never_appears_even_when_it_is_the_nearest(
    searcher: OpenSearchChunkIndex, writer: OpenSearchChunkIndex, loaded: list[ChunkDocument], index_name: str
) -> None:
    # GIVEN a secret chunk whose vector IS the query
    query = [1.0] + [0.0] * (DIM - 1)
    writer.write_chunks(index_name, [chunk_doc("secret", query, acl=["hr"], tenant="acme")])

    # WHEN a g1 user searches with the same vector
    hits = searcher.knn_search(index_name, query, 10, access_filter(["g1"], "acme"))

    # THEN it is absent, yet k permitted hits still come back (pre-filter, not post-filter)
    assert "secret:k0" not in [h.id for h in hits]
    assert len(hits) == 10
    # AND a member of hr gets it first, with the perfect cosine score
    top = searcher.knn_search(index_name, query, 1, access_filter(["hr"], "acme"))
    assert top[0].id == "secret:k0" and top[0].score == pytest.approx(1.0)


def test_hits_carry_provenance_but_not_the_embedding(
    searcher: OpenSearchChunkIndex, loaded: list[ChunkDocument], index_name: str
) -> None:
    (hit,) = searcher.knn_search(index_name, loaded[5].embedding, 1, access_filter(GROUPS, None))
    assert hit.id == loaded[5].id
    for name in ("doc_id", "chunk_key", "chunk_index", "source_version", "generation", "model_id"):
        assert hit.source[name] == getattr(loaded[5], name)
    for name in ("chunker_version", "text", "tenant", "metadata", "acl"):
        assert hit.source[name] == getattr(loaded[5], name)
    assert "embedding" not in hit.source


def test_cache_sees_writes_deletes_and_in_place_rewrites_by_another_writer(
    searcher: OpenSearchChunkIndex, writer: OpenSearchChunkIndex, loaded: list[ChunkDocument], index_name: str
) -> None:
    everyone = access_filter(GROUPS, None)
    probe = [0.0] * (DIM - 1) + [1.0]
    searcher.knn_search(index_name, probe, 5, everyone)  # warm the cache
    cache = searcher.exact
    assert cache is not None and cache.stats.full_loads == 1

    # WHEN another writer adds a chunk right on the probe THEN the next search finds it first
    writer.write_chunks(index_name, [chunk_doc("new", probe, acl=["g0"])])
    assert searcher.knn_search(index_name, probe, 1, everyone)[0].id == "new:k0"

    # WHEN it rewrites that chunk in place (same id, same count) with another vector and ACL
    writer.write_chunks(index_name, [chunk_doc("new", [-x for x in probe], version=2, acl=["g5"])])
    top = searcher.knn_search(index_name, probe, 1, everyone)[0]
    assert top.id != "new:k0"
    moved = searcher.knn_search(index_name, [-x for x in probe], 1, everyone)[0]
    assert (moved.id, moved.source["acl"], moved.source["source_version"]) == ("new:k0", ["g5"], 2)

    # WHEN it revokes access by rewriting the ACL only THEN the chunk is gone for g5 at once
    writer.write_chunks(index_name, [chunk_doc("new", [-x for x in probe], version=3, acl=["hr"])])
    assert "new:k0" not in [h.id for h in searcher.knn_search(index_name, [-x for x in probe], 5, everyone)]

    # WHEN it deletes the chunk THEN it is gone for everybody
    writer.delete_chunks(index_name, [("new:k0", 4)])
    all_hits = searcher.knn_search(index_name, [-x for x in probe], 400, None)
    assert "new:k0" not in [h.id for h in all_hits] and len(all_hits) == 300

    # AND each change was patched incrementally: one full load, only the changed chunk fetched
    assert cache.stats.full_loads == 1
    assert cache.stats.incremental_loads == 4
    assert cache.stats.docs_fetched == 300 + 3


def test_unchanged_index_is_validated_without_reloading(
    searcher: OpenSearchChunkIndex, loaded: list[ChunkDocument], index_name: str
) -> None:
    for _ in range(3):
        searcher.knn_search(index_name, loaded[0].embedding, 3, None)
    assert searcher.exact is not None
    stats = searcher.exact.stats
    assert (stats.validations, stats.full_loads, stats.incremental_loads) == (3, 1, 0)


def test_a_recreated_index_with_the_same_count_is_reloaded_fully(
    searcher: OpenSearchChunkIndex, writer: OpenSearchChunkIndex, index_name: str
) -> None:
    # GIVEN an index with one chunk, searched once
    generation = generation_for(index_name, dimension=DIM)
    writer.ensure_index(generation)
    writer.write_chunks(index_name, [chunk_doc("a", [1.0] * DIM)])
    assert searcher.knn_search(index_name, [1.0] * DIM, 1, None)[0].id == "a:k0"

    # WHEN the index is deleted and recreated with another single chunk
    writer.delete_index(index_name)
    writer.ensure_index(generation)
    writer.write_chunks(index_name, [chunk_doc("b", [1.0] * DIM)])

    # THEN the search sees the new index, not the cached one
    assert [h.id for h in searcher.knn_search(index_name, [1.0] * DIM, 5, None)] == ["b:k0"]


def test_search_through_an_alias_follows_the_swap(
    searcher: OpenSearchChunkIndex, writer: OpenSearchChunkIndex, unique_name: Callable[[str], str]
) -> None:
    # GIVEN blue and green generations holding different chunks, the alias on blue
    blue, green, alias = unique_name("blue"), unique_name("green"), unique_name("alias")
    for name, doc_id in ((blue, "in-blue"), (green, "in-green")):
        writer.ensure_index(generation_for(name, dimension=DIM))
        writer.write_chunks(name, [chunk_doc(doc_id, [1.0] * DIM)])
    writer.swap_alias(alias, blue, None)
    assert [h.id for h in searcher.knn_search(alias, [1.0] * DIM, 5, None)] == ["in-blue:k0"]

    # WHEN promoted to green THEN the very next search serves green
    writer.swap_alias(alias, green, blue)
    assert [h.id for h in searcher.knn_search(alias, [1.0] * DIM, 5, None)] == ["in-green:k0"]


def test_empty_index_returns_no_hits(
    searcher: OpenSearchChunkIndex, writer: OpenSearchChunkIndex, index_name: str
) -> None:
    writer.ensure_index(generation_for(index_name, dimension=DIM))
    assert searcher.knn_search(index_name, [1.0] * DIM, 3, access_filter("g1")) == []


@pytest.mark.parametrize(
    ("vector", "filt", "error"),
    [
        ([1.0] * (DIM + 1), None, ModelMismatchError),
        ([1.0] * DIM, {"match": {"text": "x"}}, UnsupportedFilterError),
    ],
)
def test_bad_queries_are_refused(
    searcher: OpenSearchChunkIndex,
    loaded: list[ChunkDocument],
    index_name: str,
    vector: list[float],
    filt: dict[str, Any] | None,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        searcher.knn_search(index_name, vector, 3, filt)


def test_missing_index_is_an_error_naming_it(searcher: OpenSearchChunkIndex) -> None:
    with pytest.raises(DynembedError, match="no-such-index"):
        searcher.knn_search("no-such-index", [1.0] * DIM, 3, None)


def test_native_mode_on_osmem_fails_loudly_not_silently(
    opensearch_client: OpenSearch, index_name: str
) -> None:
    # GIVEN osmem (no knn query) and the native adapter
    native = OpenSearchChunkIndex(opensearch_client, knn_mode="native")
    native.ensure_index(generation_for(index_name, dimension=DIM))

    # WHEN searching THEN the server's refusal surfaces as a DynembedError naming the index
    with pytest.raises(DynembedError, match=index_name):
        native.knn_search(index_name, [1.0] * DIM, 3, access_filter("g1"))


def test_sliced_full_load_holds_every_chunk_once(
    opensearch_client: OpenSearch, loaded: list[ChunkDocument], index_name: str
) -> None:
    # GIVEN a cache whose page size forces a sliced, multi-page full load of the 300 chunks
    searcher = OpenSearchChunkIndex(opensearch_client, knn_mode="exact")
    searcher.exact = ExactKnnCache(opensearch_client, page_size=40, load_slices=3)

    # WHEN everything is asked for
    hits = searcher.knn_search(index_name, loaded[0].embedding, 1000, None)

    # THEN each chunk is there exactly once
    assert sorted(h.id for h in hits) == sorted(d.id for d in loaded)
    assert searcher.exact.stats.full_loads == 1
