"""Query DSL for access control and caller filters, and the k-NN and hybrid requests that
carry them.

Pure functions: the same dict goes inside OpenSearch's ``knn`` clause (efficient filtering, so
k results come back whenever k permitted chunks exist, unlike a ``post_filter``) and into the
exact scorer's evaluator in local mode, so both modes enforce the same access rule. A hybrid
request puts it inside BOTH sub-queries (``bool.filter`` around the ``match``, ``filter`` in the
``knn``): a principal never gets a hit from either side that the filter denies. It is never a
``post_filter``, which would re-normalise scores after the fact and leak into aggregations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dynembed.index.mapping import EMBEDDING_FIELD

TEXT_FIELD = "text"

PUBLIC_PRINCIPAL = "public"
RANGE_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})


def access_filter(
    principal: str | Sequence[str],
    tenant: str | None = None,
    public_principal: str | None = PUBLIC_PRINCIPAL,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``bool.filter`` that admits a chunk only if its ``acl`` names one of the principals
    (a user id and/or groups) or the public principal, it belongs to ``tenant`` (when given),
    and its ``metadata.<name>`` fields match ``extra``.

    ``extra`` values: a scalar → ``term``; a list/tuple/set → ``terms`` (any of);
    a mapping of ``gt/gte/lt/lte`` → ``range``. An empty principal list with no public
    principal matches nothing (deny by default).
    """
    principals = [principal] if isinstance(principal, str) else list(principal)
    if public_principal is not None:
        principals.append(public_principal)
    for name in principals:
        if not isinstance(name, str) or not name:
            raise ValueError(f"principals must be non-empty strings, got {name!r}")
    clauses: list[dict[str, Any]] = [{"terms": {"acl": list(dict.fromkeys(principals))}}]
    if tenant is not None:
        clauses.append({"term": {"tenant": tenant}})
    for name, value in (extra or {}).items():
        clauses.append(metadata_clause(name, value))
    return {"bool": {"filter": clauses}}


def metadata_clause(name: str, value: Any) -> dict[str, Any]:
    """One caller filter on ``metadata.<name>``."""
    if not name or name.startswith(".") or name.endswith("."):
        raise ValueError(f"invalid metadata filter name {name!r}")
    field = f"metadata.{name}"
    if isinstance(value, Mapping):
        unknown = set(value) - RANGE_OPERATORS
        if unknown or not value:
            raise ValueError(f"metadata filter {name!r}: range keys must be among {sorted(RANGE_OPERATORS)}")
        return {"range": {field: dict(value)}}
    if isinstance(value, list | tuple | set | frozenset):
        return {
            "terms": {field: sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)}
        }
    if value is None:
        raise ValueError(f"metadata filter {name!r}: None is not a value (use a bool/exists query)")
    return {"term": {field: value}}


def knn_clause(
    vector: Sequence[float],
    k: int,
    filter_query: Mapping[str, Any] | None = None,
    oversample: float | None = None,
) -> dict[str, Any]:
    """``{"knn": {"embedding": ...}}`` with the filter inside, and rescoring when asked."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    clause: dict[str, Any] = {"vector": [float(x) for x in vector], "k": k}
    if filter_query:
        clause["filter"] = dict(filter_query)
    if oversample is not None:
        clause["rescore"] = {"oversample_factor": float(oversample)}
    return {"knn": {EMBEDDING_FIELD: clause}}


def lexical_clause(text: str, filter_query: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """BM25 over the passage text, with the filter as a non-scoring ``bool.filter``."""
    if not text.strip():
        raise ValueError("lexical query text is empty")
    query: dict[str, Any] = {"must": [{"match": {TEXT_FIELD: {"query": text}}}]}
    if filter_query:
        query["filter"] = [dict(filter_query)]
    return {"bool": query}


def knn_query(
    vector: Sequence[float],
    k: int,
    filter_query: Mapping[str, Any] | None = None,
    oversample: float | None = None,
) -> dict[str, Any]:
    """The ``_search`` body for native k-NN: the filter sits inside the ``knn`` clause."""
    return {
        "size": k,
        "query": knn_clause(vector, k, filter_query, oversample),
        "_source": {"excludes": [EMBEDDING_FIELD]},
    }


def lexical_query(text: str, size: int, filter_query: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``_search`` body of the lexical sub-query alone (local mode fuses it itself)."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return {
        "size": size,
        "query": lexical_clause(text, filter_query),
        "_source": {"excludes": [EMBEDDING_FIELD]},
    }


def hybrid_query(
    text: str,
    vector: Sequence[float],
    depth: int,
    filter_query: Mapping[str, Any] | None = None,
    oversample: float | None = None,
) -> dict[str, Any]:
    """The ``_search`` body of OpenSearch's ``hybrid`` query: sub-queries lexical then vector
    (the order of the pipeline's weights), each returning ``depth`` hits to the fusion, the
    filter inside both (per sub-query, which works from 2.10; 3.0's hybrid-level ``filter`` is
    the same rule written once). Run it with the generation's search pipeline; the caller
    keeps the first k of the fused hits."""
    return {
        "size": depth,
        "query": {
            "hybrid": {
                "queries": [
                    lexical_clause(text, filter_query),
                    knn_clause(vector, depth, filter_query, oversample),
                ]
            }
        },
        "_source": {"excludes": [EMBEDDING_FIELD]},
    }
