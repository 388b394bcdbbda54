"""Access filters and the native k-NN request: the filter must sit INSIDE the knn clause."""

from __future__ import annotations

from typing import Any

import pytest

from dynembed.index.filters import access_filter, knn_query, metadata_clause
from dynembed.index.opensearch import OpenSearchChunkIndex

pytestmark = pytest.mark.unit


def _walk_keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _walk_keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _walk_keys(v)}
    return set()


def test_access_filter_admits_principals_and_public_within_the_tenant() -> None:
    # GIVEN a user with two groups in tenant acme
    # WHEN the access filter is built
    query = access_filter(["user:ann", "group:eng"], "acme")

    # THEN it is a bool filter: acl is one of the principals or public, and the tenant matches
    assert query == {
        "bool": {
            "filter": [
                {"terms": {"acl": ["user:ann", "group:eng", "public"]}},
                {"term": {"tenant": "acme"}},
            ]
        }
    }


def test_access_filter_accepts_one_principal_and_no_tenant() -> None:
    # GIVEN a single principal string and no tenant
    query = access_filter("user:bob")

    # THEN there is no tenant clause and the string is not split into characters
    assert query == {"bool": {"filter": [{"terms": {"acl": ["user:bob", "public"]}}]}}


def test_access_filter_deduplicates_principals() -> None:
    query = access_filter(["public", "g1", "g1"], None)
    assert query["bool"]["filter"][0] == {"terms": {"acl": ["public", "g1"]}}


def test_without_a_public_principal_and_no_principals_nothing_matches() -> None:
    # GIVEN nobody and public access disabled
    query = access_filter([], None, public_principal=None)

    # THEN the acl clause is an empty terms list (matches no document: deny by default)
    assert query == {"bool": {"filter": [{"terms": {"acl": []}}]}}


def test_metadata_filters_become_term_terms_and_range_on_metadata_fields() -> None:
    # GIVEN caller filters of the three shapes
    query = access_filter(
        "u", "t", extra={"status": "published", "lang": ["en", "fr"], "year": {"gte": 2020, "lt": 2025}}
    )

    # THEN each targets metadata.<name> with the matching clause, after the access clauses
    assert query["bool"]["filter"][2:] == [
        {"term": {"metadata.status": "published"}},
        {"terms": {"metadata.lang": ["en", "fr"]}},
        {"range": {"metadata.year": {"gte": 2020, "lt": 2025}}},
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [("", "x"), (".x", "x"), ("x.", "x"), ("year", {"gte": 1, "bogus": 2}), ("year", {}), ("x", None)],
)
def test_invalid_metadata_filters_are_rejected(name: str, value: Any) -> None:
    with pytest.raises(ValueError):
        metadata_clause(name, value)


@pytest.mark.parametrize("principal", [[""], ["ok", 3]])
def test_invalid_principals_are_rejected(principal: list[Any]) -> None:
    with pytest.raises(ValueError):
        access_filter(principal, None)


def test_knn_query_puts_the_filter_inside_the_knn_clause() -> None:
    # GIVEN an access filter
    acl = access_filter(["g1"], "acme")

    # WHEN the native request is built
    body = knn_query([0.1, 0.2, 0.3], 5, acl)

    # THEN the filter is knn.embedding.filter (efficient filtering), never a post_filter
    assert body["query"]["knn"]["embedding"] == {"vector": [0.1, 0.2, 0.3], "k": 5, "filter": acl}
    assert body["size"] == 5
    assert "post_filter" not in _walk_keys(body)
    assert body["_source"] == {"excludes": ["embedding"]}


def test_knn_query_without_filter_has_no_filter_key() -> None:
    body = knn_query([1.0], 3, None)
    assert body["query"]["knn"]["embedding"] == {"vector": [1.0], "k": 3}


def test_knn_query_rejects_non_positive_k() -> None:
    with pytest.raises(ValueError):
        knn_query([1.0], 0, None)


class RecordingClient:
    """Stands in for OpenSearch.search only: records the request, answers one hit."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append((index, body))
        source = {"doc_id": "d1", "chunk_key": "k", "embedding": [0.0, 1.0], "acl": ["g1"]}
        return {"hits": {"hits": [{"_id": "d1:k", "_score": 0.9, "_source": source}]}}


def test_native_knn_search_sends_the_filter_inside_the_knn_clause() -> None:
    # GIVEN the adapter in native mode over a recording client
    client = RecordingClient()
    index = OpenSearchChunkIndex(client, knn_mode="native")  # type: ignore[arg-type]
    acl = access_filter(["g1"], "acme", extra={"status": "live"})

    # WHEN it searches
    hits = index.knn_search("dynembed-chunks", [0.0, 1.0], 10, acl)

    # THEN exactly one request carries the filter inside knn, with no post_filter
    ((target, body),) = client.requests
    assert target == "dynembed-chunks"
    assert body["query"]["knn"]["embedding"]["filter"] == acl
    assert body["query"]["knn"]["embedding"]["k"] == 10
    assert "post_filter" not in _walk_keys(body)
    # AND hits come back with their score and without the embedding
    assert [(h.id, h.score) for h in hits] == [("d1:k", 0.9)]
    assert "embedding" not in hits[0].source
    assert hits[0].source["acl"] == ["g1"]
