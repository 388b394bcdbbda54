"""Hybrid retrieval and vector precision through OpenSearchChunkIndex on osmem (exact mode):
BM25 computed over the server's own analysis, the filter inside both sub-queries (a principal
never gets a lexical-only hit it may not read), terms patched with every write; and the
native-mode requests (search pipeline first, then the index; hybrid query through it)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opensearchpy import OpenSearch

from dynembed.core.models import ChunkDocument, Generation, RetrievalSpec, VectorSpec
from dynembed.core.ports import IndexSearch
from dynembed.index.filters import access_filter
from dynembed.index.opensearch import OpenSearchChunkIndex
from tests.plugins.osmem import chunk_doc, generation_for

pytestmark = pytest.mark.integration

HYBRID = RetrievalSpec(mode="hybrid", candidates=1, lexical_weight=0.5)
"""One candidate per sub-query: the vector side brings only the nearest doc, so a doc found by
its words alone is a lexical-only hit."""


def hybrid_generation(index_name: str) -> Generation:
    return generation_for(index_name).model_copy(update={"retrieval": HYBRID})


def search(
    index: OpenSearchChunkIndex, name: str, text: str, vector: list[float], principals: list[str], **spec: Any
) -> list[str]:
    request = IndexSearch(
        vector=vector,
        k=2,
        filter=access_filter(principals, "acme"),
        text=text,
        retrieval=spec.get("retrieval", HYBRID),
        vectors=spec.get("vectors", VectorSpec()),
    )
    return [hit.id for hit in index.search(name, request)]


@pytest.fixture
def loaded(
    opensearch_client: OpenSearch, index_name: str
) -> tuple[OpenSearchChunkIndex, list[ChunkDocument]]:
    index = OpenSearchChunkIndex(opensearch_client, knn_mode="exact")
    index.ensure_index(hybrid_generation(index_name))
    docs = [
        chunk_doc("near", [1, 0, 0, 0], text="ordinary words about nothing much"),
        chunk_doc("secret", [0, 0, 0, 1], text="the zebracorns were jumping over quasarpines", acl=["staff"]),
        chunk_doc("open", [0, 0, 1, 0], text="a zebracorn jumps", acl=["public"]),
        chunk_doc("other", [0, 1, 0, 0], text="unrelated text again"),
    ]
    index.write_chunks(index_name, docs)
    index.refresh(index_name)
    return index, docs


def test_a_lexical_only_hit_needs_the_same_permission_as_a_vector_hit(
    loaded: tuple[OpenSearchChunkIndex, list[ChunkDocument]], index_name: str
) -> None:
    index, _ = loaded
    # GIVEN a query whose words the staff doc matches best (the public doc shares one), and
    # whose vector is nearest to a third doc
    text, vector = "quasarpines jumping", [1.0, 0.0, 0.0, 0.0]
    # WHEN staff search THEN the staff-only doc comes back through BM25 alone
    staff = search(index, index_name, text, vector, ["staff"])
    assert "secret:k0" in staff and "near:k0" in staff
    # WHEN a reader searches THEN it never does, although its words match best
    reader = search(index, index_name, text, vector, ["reader"])
    assert "secret:k0" not in reader and "open:k0" in reader


def test_revoking_access_removes_the_lexical_hit_at_once(
    loaded: tuple[OpenSearchChunkIndex, list[ChunkDocument]], index_name: str
) -> None:
    index, docs = loaded
    text, vector = "zebracorn", [1.0, 0.0, 0.0, 0.0]
    assert "open:k0" in search(index, index_name, text, vector, ["reader"])  # warms terms and vectors
    # WHEN the public doc's ACL is rewritten to staff only (an access patch)
    revoked = docs[2].model_copy(update={"acl": ["staff"], "source_version": 2})
    index.write_chunks(index_name, [revoked])
    # THEN the next search (an incremental cache patch) no longer lets the reader find it
    assert "open:k0" not in search(index, index_name, text, vector, ["reader"])
    assert index.exact is not None and index.exact.stats.incremental_loads == 1


def test_an_edited_text_is_found_by_its_new_words_after_the_patch(
    loaded: tuple[OpenSearchChunkIndex, list[ChunkDocument]], index_name: str
) -> None:
    index, docs = loaded
    assert "other:k0" not in search(index, index_name, "marrowlight", [1.0, 0, 0, 0], ["reader"])
    edited = docs[3].model_copy(update={"text": "marrowlight thimbleberries", "source_version": 2})
    index.write_chunks(index_name, [edited])
    # THEN the next search (an incremental patch) finds it by BM25 alone (its vector is far)
    assert "other:k0" in search(index, index_name, "thimbleberry marrowlight", [1.0, 0, 0, 0], ["reader"])
    assert index.exact is not None and index.exact.stats.term_vectors_fetched == 4 + 1


def test_bm25_follows_lucene_over_the_servers_terms(
    loaded: tuple[OpenSearchChunkIndex, list[ChunkDocument]], index_name: str, opensearch_client: OpenSearch
) -> None:
    index, docs = loaded
    assert index.exact is not None

    def indexed_terms(doc_id: str) -> dict[str, int]:
        found = opensearch_client.termvectors(index=index_name, id=f"{doc_id}:k0", params={"fields": "text"})
        return {t: v["term_freq"] for t, v in found["term_vectors"]["text"]["terms"].items()}

    # GIVEN the terms the server indexed for each doc (stemmed, stop words out)
    terms = {d.doc_id: indexed_terms(d.doc_id) for d in docs}
    assert {"zebracorn", "jump"} <= set(terms["secret"]) and {"zebracorn", "jump"} <= set(terms["open"])
    # WHEN the cache scores the staff doc for a query that stems to the same two terms
    lexical, _ = index.exact.hybrid(index_name, [0.0, 0.0, 0.0, 1.0], "zebracorns jumping", 5, None)
    scores = {h.id: h.score for h in lexical}
    # THEN it is Lucene's BM25 (k1 1.2, b 0.75) over this index's 4 docs, each term in 2 of them
    average = sum(sum(t.values()) for t in terms.values()) / 4
    idf = math.log(1 + (4 - 2 + 0.5) / (2 + 0.5))

    def bm25(doc_id: str) -> float:
        length = sum(terms[doc_id].values())
        return 2 * idf * 1 / (1 + 1.2 * (1 - 0.75 + 0.75 * length / average))

    assert set(scores) == {"secret:k0", "open:k0"}
    assert scores["secret:k0"] == pytest.approx(bm25("secret"), rel=1e-6)
    assert scores["open:k0"] == pytest.approx(bm25("open"), rel=1e-6)
    assert scores["open:k0"] > scores["secret:k0"]  # the shorter doc


def test_precision_changes_the_scoring_not_the_stored_vectors(
    loaded: tuple[OpenSearchChunkIndex, list[ChunkDocument]], index_name: str
) -> None:
    index, _ = loaded
    vector_only = RetrievalSpec()
    query = [0.9, 0.1, 0.3, 0.0]
    full = search(index, index_name, "x", query, ["staff"], retrieval=vector_only)
    for spec in (VectorSpec(precision="float16"), VectorSpec(precision="binary", oversample=2.0)):
        assert search(index, index_name, "x", query, ["staff"], retrieval=vector_only, vectors=spec) == full
    assert index.get_chunks(index_name, ["near:k0"])["near:k0"]["embedding"] == [1.0, 0.0, 0.0, 0.0]


# ---- native mode: the requests ------------------------------------------------------------------


class NativeRecorder:
    """Records what the adapter sends in native mode (pipeline, index creation, search)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        recorder = self

        class Pipelines:
            def put(self, id: str, body: dict[str, Any]) -> dict[str, Any]:
                recorder.calls.append(("put_pipeline", (id, body)))
                return {"acknowledged": True}

        class Indices:
            def exists(self, index: str) -> bool:
                return False

            def create(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
                recorder.calls.append(("create_index", (index, body)))
                return {"acknowledged": True}

        self.search_pipeline = Pipelines()
        self.indices = Indices()

    def search(
        self, index: str, body: dict[str, Any], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self.calls.append(("search", (index, body, params)))
        return {
            "hits": {
                "hits": [
                    {"_id": f"d{i}:k", "_score": 1.0 - i / 10, "_source": {"doc_id": f"d{i}"}}
                    for i in range(8)
                ]
            }
        }


def test_natively_the_pipeline_exists_before_the_index_that_names_it() -> None:
    client = NativeRecorder()
    index = OpenSearchChunkIndex(client, knn_mode="native")  # type: ignore[arg-type]
    gen = hybrid_generation("chunks-g2")
    index.ensure_index(gen)
    (first, (name, pipeline)), (second, (index_name, body)) = client.calls
    assert (first, second, name, index_name) == (
        "put_pipeline",
        "create_index",
        "chunks-g2-hybrid",
        "chunks-g2",
    )
    assert "normalization-processor" in pipeline["phase_results_processors"][0]
    assert body["settings"]["index"]["search.default_pipeline"] == "chunks-g2-hybrid"


def test_natively_a_hybrid_search_names_its_pipeline_and_keeps_k_of_the_fused_hits() -> None:
    client = NativeRecorder()
    index = OpenSearchChunkIndex(client, knn_mode="native")  # type: ignore[arg-type]
    acl = access_filter(["g1"], "acme")
    request = IndexSearch(
        vector=[0.1, 0.2],
        k=3,
        filter=acl,
        text="how to",
        retrieval=RetrievalSpec(mode="hybrid", candidates=8),
        vectors=VectorSpec(precision="binary", on_disk=True),
        pipeline="chunks-g2-hybrid",
    )
    hits = index.search("dynembed-chunks", request)
    ((kind, (target, body, params)),) = client.calls
    assert (kind, target, params) == ("search", "dynembed-chunks", {"search_pipeline": "chunks-g2-hybrid"})
    lexical, knn = body["query"]["hybrid"]["queries"]
    assert lexical["bool"]["filter"] == [acl] and knn["knn"]["embedding"]["filter"] == acl
    # on disk at 2 dimensions: the plugin's default factor (5.0), sent explicitly
    assert (
        knn["knn"]["embedding"]["rescore"] == {"oversample_factor": 5.0} and knn["knn"]["embedding"]["k"] == 8
    )
    assert [h.id for h in hits] == ["d0:k", "d1:k", "d2:k"]
