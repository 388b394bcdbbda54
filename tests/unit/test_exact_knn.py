"""Exact k-NN pieces without a server: the filter DSL evaluator, OpenSearch-style scores, and
pre-filtered top-k over a VectorTable."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynembed.core.errors import ModelMismatchError
from dynembed.index.exact import VectorTable
from dynembed.index.filter_eval import FilterEvaluator, UnsupportedFilterError, field_values
from dynembed.index.filters import access_filter
from dynembed.index.scoring import top_rows

pytestmark = pytest.mark.unit

DOCS: list[dict[str, Any]] = [
    {"acl": ["g1", "g2"], "tenant": "acme", "metadata": {"lang": "en", "year": 2020, "draft": False}},
    {"acl": ["public"], "tenant": "acme", "metadata": {"lang": "fr", "year": 2023}},
    {"acl": ["g3"], "tenant": "other", "metadata": {"lang": "en", "year": 2024.5, "tags": ["a", "b"]}},
    {"acl": [], "tenant": None, "metadata": {}},
    {"acl": "g2", "metadata": {"lang": "de", "year": [2019, 2030], "nested": {"x": "5"}}},
]
IDS = [f"d{i}:k" for i in range(len(DOCS))]


def rows(query: dict[str, Any] | None) -> list[int]:
    return [int(r) for r in np.flatnonzero(FilterEvaluator(IDS, DOCS).mask(query))]


# -- evaluator --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (None, [0, 1, 2, 3, 4]),
        ({"match_all": {}}, [0, 1, 2, 3, 4]),
        ({"match_none": {}}, []),
        ({"term": {"tenant": "acme"}}, [0, 1]),
        ({"term": {"tenant": {"value": "other"}}}, [2]),
        ({"terms": {"acl": ["g2", "public"]}}, [0, 1, 4]),  # scalar acl counts as a one-element list
        ({"terms": {"acl": []}}, []),
        ({"exists": {"field": "tenant"}}, [0, 1, 2]),  # None is absent
        ({"exists": {"field": "metadata.tags"}}, [2]),
        ({"range": {"metadata.year": {"gte": 2023}}}, [1, 2, 4]),  # any value of an array
        ({"range": {"metadata.year": {"gt": 2020, "lt": 2024}}}, [1]),
        ({"term": {"metadata.year": 2020.0}}, [0]),  # 2020 and 2020.0 are one term
        ({"term": {"metadata.nested.x": 5}}, [4]),  # a number matches its keyword string
        ({"term": {"metadata.draft": False}}, [0]),
        ({"term": {"metadata.tags": "b"}}, [2]),
        ({"ids": {"values": ["d1:k", "missing"]}}, [1]),
        ({"bool": {"must_not": [{"term": {"tenant": "acme"}}]}}, [2, 3, 4]),
        ({"bool": {"should": [{"term": {"tenant": "other"}}, {"term": {"acl": "public"}}]}}, [1, 2]),
        (
            {
                "bool": {
                    "filter": {"term": {"metadata.lang": "en"}},
                    "should": [{"term": {"tenant": "other"}}],
                }
            },
            [0, 2],  # with a filter, should is optional
        ),
        (
            {
                "bool": {
                    "filter": [{"term": {"metadata.lang": "en"}}],
                    "should": [{"term": {"tenant": "other"}}],
                    "minimum_should_match": 1,
                }
            },
            [2],
        ),
        ({"constant_score": {"filter": {"term": {"acl": "g3"}}}}, [2]),
        ({"bool": {}}, [0, 1, 2, 3, 4]),
    ],
)
def test_evaluator_matches_opensearch_semantics(query: dict[str, Any] | None, expected: list[int]) -> None:
    # GIVEN hand-built docs WHEN a clause is evaluated THEN exactly the expected docs match
    assert rows(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        {"match": {"text": "hello"}},
        {"term": {"a": 1}, "terms": {"b": [1]}},
        {"terms": {"acl": {"index": "users", "id": "1", "path": "groups"}}},
        {"range": {"metadata.year": {"gte": "2020-01-01"}}},
        {"range": {"metadata.year": {"format": "yyyy"}}},
        {"bool": {"filter": [{"knn": {}}]}},
        {"bool": {"boost": 1, "adjust_pure_negative": True}},
        {"term": {"metadata": {"value": {"nested": 1}}}},
    ],
)
def test_unsupported_clauses_raise_instead_of_being_ignored(query: dict[str, Any]) -> None:
    # GIVEN a clause the evaluator cannot honour WHEN evaluated THEN it refuses loudly
    with pytest.raises(UnsupportedFilterError):
        rows(query)


def test_field_values_flattens_arrays_of_objects() -> None:
    doc = {"a": [{"b": 1}, {"b": [2, 3]}, {"c": 4}], "n": None}
    assert field_values(doc, "a.b") == [1, 2, 3]
    assert field_values(doc, "n") == []
    assert field_values(doc, "missing.path") == []


GROUPS = [f"g{i}" for i in range(6)] + ["public"]
TENANTS = ["t1", "t2", None]


@settings(max_examples=200, deadline=None)
@given(
    docs=st.lists(
        st.fixed_dictionaries(
            {
                "acl": st.lists(st.sampled_from(GROUPS), max_size=4, unique=True),
                "tenant": st.sampled_from(TENANTS),
                "metadata": st.fixed_dictionaries({"lang": st.sampled_from(["en", "fr"])}),
            }
        ),
        max_size=30,
    ),
    principals=st.lists(st.sampled_from(GROUPS[:-1]), max_size=3),
    tenant=st.sampled_from(TENANTS),
    lang=st.sampled_from([None, "en", ["en", "fr"]]),
)
def test_access_filter_agrees_with_a_direct_predicate(
    docs: list[dict[str, Any]], principals: list[str], tenant: str | None, lang: str | list[str] | None
) -> None:
    # GIVEN random acl/tenant/lang docs and a random principal
    extra = {"lang": lang} if lang is not None else None
    query = access_filter(principals, tenant, extra=extra)
    allowed_langs = {lang} if isinstance(lang, str) else set(lang or [])

    def permitted(doc: dict[str, Any]) -> bool:
        return (
            bool(set(doc["acl"]) & ({*principals, "public"}))
            and (tenant is None or doc["tenant"] == tenant)
            and (lang is None or doc["metadata"]["lang"] in allowed_langs)
        )

    # WHEN the evaluator runs the very dict native mode would send
    mask = FilterEvaluator([str(i) for i in range(len(docs))], docs).mask(query)

    # THEN it agrees with the predicate on every doc
    assert mask.tolist() == [permitted(d) for d in docs]


# -- scores and top-k --------------------------------------------------------------------------


def table(vectors: list[list[float]], space: str, acls: list[list[str]] | None = None) -> VectorTable:
    hits = [
        {
            "_id": f"d{i}:k",
            "_seq_no": i,
            "_primary_term": 1,
            "_source": {"doc_id": f"d{i}", "acl": (acls or [["public"]] * len(vectors))[i], "embedding": v},
        }
        for i, v in enumerate(vectors)
    ]
    return VectorTable.from_hits("idx", "uuid", space, len(vectors[0]), hits)


def test_cosine_score_is_one_plus_cosine_over_two() -> None:
    # GIVEN unnormalised stored vectors at 0°, 90° and 180° from the query
    t = table([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]], "cosinesimil")

    # WHEN searching with an unnormalised query
    hits = t.scored([5.0, 0.0], 3, None)

    # THEN scores are (1 + cos) / 2 as OpenSearch's cosinesimil reports them
    assert [(h.id, round(h.score, 6)) for h in hits] == [("d0:k", 1.0), ("d1:k", 0.5), ("d2:k", 0.0)]


def test_innerproduct_score_uses_opensearch_piecewise_transform() -> None:
    t = table([[2.0, 0.0], [-3.0, 0.0]], "innerproduct")
    hits = {h.id: h.score for h in t.scored([1.0, 0.0], 2, None)}
    assert hits["d0:k"] == pytest.approx(1 + 2.0)
    assert hits["d1:k"] == pytest.approx(1 / (1 + 3.0))


def test_l2_score_is_one_over_one_plus_squared_distance() -> None:
    t = table([[1.0, 1.0], [4.0, 5.0]], "l2")
    hits = {h.id: h.score for h in t.scored([1.0, 1.0], 2, None)}
    assert hits["d0:k"] == pytest.approx(1.0)
    assert hits["d1:k"] == pytest.approx(1 / (1 + 9 + 16))


def test_denied_nearest_doc_never_appears_and_k_results_still_come_back() -> None:
    # GIVEN the two nearest docs are restricted to g9, and three farther docs are public
    vectors = [[1.0, 0.0], [0.99, 0.1], [0.5, 0.5], [0.0, 1.0], [-1.0, 0.2]]
    acls = [["g9"], ["g9"], ["public"], ["g1"], ["public"]]
    t = table(vectors, "cosinesimil", acls)

    # WHEN a g1 user asks for the top 3 of a query right on the restricted docs
    hits = t.scored([1.0, 0.0], 3, access_filter(["g1"], None))

    # THEN the filter applied before ranking: 3 permitted hits, best first, none restricted
    assert [h.id for h in hits] == ["d2:k", "d3:k", "d4:k"]
    assert all("g9" not in h.source["acl"] for h in hits)
    assert all("embedding" not in h.source for h in hits)


def test_fewer_matches_than_k_returns_all_matches() -> None:
    t = table([[1.0, 0.0], [0.0, 1.0]], "cosinesimil", [["a"], ["b"]])
    only_b = access_filter(["b"], None, public_principal=None)
    assert [h.id for h in t.scored([1.0, 0.0], 10, only_b)] == ["d1:k"]


def test_query_of_another_dimension_is_a_model_mismatch() -> None:
    t = table([[1.0, 0.0]], "cosinesimil")
    with pytest.raises(ModelMismatchError):
        t.scored([1.0, 0.0, 0.0], 1, None)


def test_top_rows_breaks_ties_by_row_and_respects_the_mask() -> None:
    scores = np.array([0.5, 0.9, 0.9, 0.1, 0.9], dtype=np.float32)
    mask = np.array([True, True, True, True, False])
    assert top_rows(scores, mask, 2) == [1, 2]
    assert top_rows(scores, np.zeros(5, dtype=bool), 2) == []


def test_incremental_table_reuses_kept_rows_and_appends_fresh_ones() -> None:
    # GIVEN a table of three docs
    old = table([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "cosinesimil")

    # WHEN d1 is dropped, d0 and d2 kept, and d3 arrives
    fresh = [{"_id": "d3:k", "_seq_no": 9, "_primary_term": 1, "_source": {"embedding": [0.0, -2.0]}}]
    new = VectorTable.from_hits("idx", "uuid", "cosinesimil", 2, fresh, reuse=old, reuse_ids=["d0:k", "d2:k"])

    # THEN rows, markers and (normalised) vectors line up
    assert new.ids == ["d0:k", "d2:k", "d3:k"]
    assert new.markers == [(0, 1), (2, 1), (9, 1)]
    np.testing.assert_allclose(new.vectors[1], [math.sqrt(0.5), math.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(new.vectors[2], [0.0, -1.0])
    assert [h.id for h in new.scored([0.0, -1.0], 1, None)] == ["d3:k"]
