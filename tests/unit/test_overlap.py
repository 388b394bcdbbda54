"""Overlap@k and rank-biased overlap (Webber, Moffat and Zobel 2010), against values worked out
by hand from the paper's equations and against a direct transcription of equation 32."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynembed.quality.overlap import overlap_at_k, rbo

pytestmark = pytest.mark.unit


def test_overlap_at_k_counts_shared_docs_over_the_longer_prefix() -> None:
    assert overlap_at_k(["a", "b", "c"], ["c", "a", "x"], k=10) == pytest.approx(2 / 3)
    assert overlap_at_k(["a", "b"], ["a", "b", "c", "d"], k=10) == pytest.approx(2 / 4)
    assert overlap_at_k(["a", "b", "c"], ["c", "b", "a"], k=2) == pytest.approx(1 / 2)
    assert overlap_at_k([], [], k=10) == 1.0
    assert overlap_at_k(["a"], [], k=10) == 0.0


def test_identical_and_disjoint_rankings() -> None:
    assert rbo(list("abcdefghij"), list("abcdefghij")) == pytest.approx(1.0)
    assert rbo(list("abc"), list("xyz")) == 0.0
    assert rbo([], []) == 1.0
    assert rbo(["a"], []) == 0.0


def test_even_lists_by_hand() -> None:
    # S = a b c, T = a c b, p = 0.9: X_1 = 1, X_2 = 1, X_3 = 3 (equation 30)
    #   (1-p)/p * (1/1 * .9 + 1/2 * .81 + 3/3 * .729) + 3/3 * .729
    # = 1/9 * 2.034 + .729 = .226 + .729 = .955
    assert rbo(list("abc"), list("acb"), p=0.9) == pytest.approx(0.955, abs=1e-12)


def test_uneven_lists_by_hand() -> None:
    # S = a b (s = 2), L = a c b (l = 3), p = 1/2 (equation 32):
    #   X_1 = 1, X_2 = 1 (a; b is not in a c yet), X_3 = 2; X_s = 1, X_l = 2
    #   sum_d X_d/d p^d        = 1/2 + 1/2 * 1/4 + 2/3 * 1/8   = 17/24
    #   sum_{d>s} X_s(d-s)/(sd) p^d = 1 * 1 / 6 * 1/8          = 1/48
    #   ((X_l - X_s)/l + X_s/s) p^l = (1/3 + 1/2) * 1/8        = 5/48
    #   (1-p)/p = 1, so RBO_ext = 17/24 + 1/48 + 5/48 = 5/6
    expected = Fraction(17, 24) + Fraction(1, 48) + Fraction(5, 48)
    assert expected == Fraction(5, 6)
    assert rbo(list("ab"), list("acb"), p=0.5) == pytest.approx(float(expected), abs=1e-12)
    assert rbo(list("acb"), list("ab"), p=0.5) == pytest.approx(float(expected), abs=1e-12)


def test_disagreement_at_the_top_costs_more_than_at_the_bottom() -> None:
    base = list("abcdefghij")
    swapped_top = list("bacdefghij")
    swapped_bottom = list("abcdefghji")
    assert rbo(base, swapped_top) < rbo(base, swapped_bottom) < 1.0


def _equation_32(first: list[str], second: list[str], p: float) -> float:
    """A direct transcription of Webber et al.'s equation 32 with set intersections."""
    short, long_ = sorted((first, second), key=len)
    s, n = len(short), len(long_)

    def x(d: int) -> int:
        return len(set(short[:d]) & set(long_[:d]))

    total = sum(x(d) / d * p**d for d in range(1, n + 1))
    total += sum(x(s) * (d - s) / (s * d) * p**d for d in range(s + 1, n + 1))
    return (1 - p) / p * total + ((x(n) - x(s)) / n + x(s) / s) * p**n


rankings = st.lists(st.sampled_from("abcdefghijklmnop"), min_size=1, max_size=12, unique=True)


@given(rankings, rankings, st.sampled_from([0.5, 0.8, 0.9, 0.98]))
def test_rbo_is_equation_32_symmetric_and_bounded(first: list[str], second: list[str], p: float) -> None:
    value = rbo(first, second, p)
    assert value == pytest.approx(_equation_32(first, second, p), abs=1e-9)
    assert value == pytest.approx(rbo(second, first, p), abs=1e-12)
    assert 0.0 <= value <= 1.0
    if first == second:
        assert value == pytest.approx(1.0)
