"""Hybrid fusion as OpenSearch's pipelines compute it: hand-computed cases and properties."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynembed.core.models import FusionMethod, RetrievalSpec
from dynembed.core.ports import SearchHit
from dynembed.index.fusion import MIN_SCORE, fuse, fuse_for, min_max, reciprocal_ranks

pytestmark = pytest.mark.unit


def hits(*pairs: tuple[str, float]) -> list[SearchHit]:
    return [SearchHit(doc_id, score, {"doc_id": doc_id}) for doc_id, score in pairs]


LEXICAL = hits(("a", 10.0), ("b", 6.0), ("c", 2.0))
VECTOR = hits(("b", 0.9), ("d", 0.8), ("a", 0.5))


def test_min_max_maps_the_range_to_0_1_and_the_worst_hit_to_0_001() -> None:
    assert min_max([10.0, 6.0, 2.0]) == [1.0, 0.5, MIN_SCORE]
    assert min_max([0.7]) == [1.0]  # a single hit: 1.0
    assert min_max([0.4, 0.4]) == [1.0, 1.0]
    assert min_max([]) == []


def test_linear_fusion_by_hand() -> None:
    # n_lex: a 1, b 0.5, c 0.001; n_vec: b 1, d 0.75, a 0.001; weights 0.3 / 0.7
    fused = fuse([LEXICAL, VECTOR], [0.3, 0.7], FusionMethod.LINEAR, k=10)
    expected = {"b": 0.3 * 0.5 + 0.7 * 1.0, "d": 0.7 * 0.75, "a": 0.3 * 1.0 + 0.7 * 0.001, "c": 0.3 * 0.001}
    assert [h.id for h in fused] == ["b", "d", "a", "c"]
    for hit in fused:
        assert hit.score == pytest.approx(expected[hit.id], abs=1e-12)


def test_a_doc_missing_from_a_sub_query_keeps_that_weight_in_the_denominator() -> None:
    # weights not summing to 1: arithmetic_mean divides by the sum of all weights
    (only_lexical,) = [h for h in fuse([LEXICAL, VECTOR], [1.0, 3.0], FusionMethod.LINEAR, 10) if h.id == "c"]
    assert only_lexical.score == pytest.approx(1.0 * MIN_SCORE / 4.0)


def test_rrf_by_hand() -> None:
    # ranks from 1: lexical a1 b2 c3, vector b1 d2 a3; rank constant 60, weights 0.5 / 0.5
    fused = fuse([LEXICAL, VECTOR], [0.5, 0.5], FusionMethod.RRF, k=10, rank_constant=60)
    expected = {
        "a": 0.5 / 61 + 0.5 / 63,
        "b": 0.5 / 62 + 0.5 / 61,
        "c": 0.5 / 63,
        "d": 0.5 / 62,
    }
    assert [h.id for h in fused] == ["b", "a", "d", "c"]
    for hit in fused:
        assert hit.score == pytest.approx(expected[hit.id], abs=1e-15)
    assert reciprocal_ranks(2, 60) == [1 / 61, 1 / 62]


def test_fuse_for_uses_the_generation_settings_and_keeps_the_first_source() -> None:
    spec = RetrievalSpec(mode="hybrid", fusion="rrf", rank_constant=1, lexical_weight=1.0)
    fused = fuse_for(spec, LEXICAL, VECTOR, k=2)
    assert [h.id for h in fused] == ["a", "b"]  # lexical only: vector weight 0
    assert fused[0].source is LEXICAL[0].source


def test_weights_must_match_the_sub_queries_and_be_usable() -> None:
    with pytest.raises(ValueError, match="2 sub-query results for 1 weights"):
        fuse([LEXICAL, VECTOR], [1.0], FusionMethod.LINEAR, 5)
    with pytest.raises(ValueError, match="positive sum"):
        fuse([LEXICAL, VECTOR], [0.0, 0.0], FusionMethod.LINEAR, 5)


scores = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
ids = st.sampled_from([f"d{i}" for i in range(12)])
result_lists = st.lists(st.tuples(ids, scores), max_size=12, unique_by=lambda p: p[0]).map(
    lambda pairs: hits(*sorted(pairs, key=lambda p: -p[1]))
)


@given(
    result_lists, result_lists, st.floats(0.0, 1.0), st.sampled_from(list(FusionMethod)), st.integers(1, 20)
)
def test_fused_rankings_are_sorted_complete_and_bounded(
    lexical: list[SearchHit], vector: list[SearchHit], weight: float, method: FusionMethod, k: int
) -> None:
    fused = fuse([lexical, vector], [weight, 1 - weight], method, k, rank_constant=60)
    union = {h.id for h in lexical} | {h.id for h in vector}
    # THEN: at most k of the union, no repeats, best first, ties by id
    assert len(fused) == min(k, len(union))
    assert len({h.id for h in fused}) == len(fused) and {h.id for h in fused} <= union
    assert all((-a.score, a.id) <= (-b.score, b.id) for a, b in itertools.pairwise(fused))
    # AND scores stay in range: linear in [0, 1], rrf at most sum(w) / (c + 1)
    ceiling = 1.0 if method is FusionMethod.LINEAR else 1.0 / 61
    assert all(-1e-12 <= h.score <= ceiling + 1e-12 for h in fused)


@given(result_lists, st.sampled_from(list(FusionMethod)))
def test_a_doc_first_in_both_lists_is_first_when_fused(vector: list[SearchHit], method: FusionMethod) -> None:
    # GIVEN a doc on top of both sub-queries (with a strictly higher score in each)
    top_vector = hits(("top", 1000.0), *[(h.id, h.score) for h in vector])
    top_lexical = hits(("top", 1000.0), *[(h.id, h.score) for h in reversed(vector)])
    fused = fuse([top_lexical, top_vector], [0.4, 0.6], method, 5)
    assert fused[0].id == "top"
    if method is FusionMethod.LINEAR:
        assert math.isclose(fused[0].score, 1.0)
