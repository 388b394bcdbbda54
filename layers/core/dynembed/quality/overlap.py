"""How much two rankings agree: top-k overlap and rank-biased overlap (RBO).

RBO follows Webber, Moffat and Zobel, "A similarity measure for indefinite rankings" (ACM TOIS
28(4), 2010). With ``X_d`` the number of items the two lists share in their first ``d`` places
and ``A_d = X_d / d`` their agreement at depth ``d``, RBO weighs agreement geometrically:
``RBO = (1 - p) * sum_d p^(d-1) * A_d``. Search answers are finite prefixes of longer rankings,
so what is reported is the paper's point estimate ``RBO_ext``, which extrapolates the agreement
seen at the deepest evaluated rank to the unseen tail (its equation 32, for lists of different
lengths ``s <= l``; for ``s == l`` it is equation 30)::

    RBO_ext = (1-p)/p * ( sum_{d=1..l} X_d/d * p^d  +  sum_{d=s+1..l} X_s*(d-s)/(s*d) * p^d )
              + ( (X_l - X_s)/l + X_s/s ) * p^l

where, past the end of the shorter list, ``X_d`` counts its items found in the first ``d`` of
the longer one. ``p`` sets how top-heavy it is: with p = 0.9 the first 10 ranks carry about
86% of the weight.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

DEFAULT_P = 0.9


def overlap_at_k(first: Sequence[Hashable], second: Sequence[Hashable], k: int = 10) -> float:
    """Share of the top-k both lists return: ``|A[:k] & B[:k]| / max(|A[:k]|, |B[:k]|)``.

    The denominator is the longer of the two prefixes (not k), so two generations that both
    return the same three docs agree fully; 1.0 when both are empty, 0.0 when only one is."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    a, b = _unique(first)[:k], _unique(second)[:k]
    if not a and not b:
        return 1.0
    return len(set(a) & set(b)) / max(len(a), len(b))


def rbo(first: Sequence[Hashable], second: Sequence[Hashable], p: float = DEFAULT_P) -> float:
    """RBO_ext of two rankings (duplicates after their first place are ignored).

    1.0 for identical rankings, 0.0 for disjoint ones; symmetric. Both empty: 1.0 (they agree
    there is nothing); one empty: 0.0."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    a, b = _unique(first), _unique(second)
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    s, n = len(short), len(long_)
    if n == 0:
        return 1.0
    if s == 0:
        return 0.0
    seen_short: set[Hashable] = set()
    seen_long: set[Hashable] = set()
    shared = 0
    weighted = 0.0
    x_s = 0
    for d in range(1, n + 1):
        # X_d: items in both prefixes of depth d (the short list stops growing after s).
        item_long = long_[d - 1]
        if d <= s:
            item_short = short[d - 1]
            if item_short == item_long:
                shared += 1
            else:
                shared += (item_short in seen_long) + (item_long in seen_short)
            seen_short.add(item_short)
        else:
            shared += item_long in seen_short
        seen_long.add(item_long)
        weighted += shared / d * p**d
        if d == s:
            x_s = shared
    x_l = shared
    tail = sum(x_s * (d - s) / (s * d) * p**d for d in range(s + 1, n + 1))
    value = (1 - p) / p * (weighted + tail) + ((x_l - x_s) / n + x_s / s) * p**n
    return min(1.0, max(0.0, value))


def _unique(items: Sequence[Hashable]) -> list[Hashable]:
    return list(dict.fromkeys(items))
