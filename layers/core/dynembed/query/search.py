"""Query flow: embed the text with the serving generation's model, retrieve as the generation
says (k-NN, or hybrid BM25 + k-NN) with the access filter inside every sub-query, return chunks
with their provenance and the generation's calibrated score threshold (DESIGN.md flow 3,
invariant I1)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynembed.core.errors import (
    AccessDeniedError,
    GenerationNotSearchableError,
    ModelMismatchError,
    UnknownGenerationError,
)
from dynembed.core.models import SENTINEL_PRINCIPAL, SENTINEL_TENANT, Generation, GenerationStatus, ModelSpec
from dynembed.core.ports import ChunkIndex, Embedder, IndexSearch, QuerySignals, Registry
from dynembed.core.samples import LiveQuery
from dynembed.index.filters import access_filter
from dynembed.index.mapping import search_pipeline_name


@dataclass(frozen=True)
class SearchResult:
    doc_id: str
    chunk_key: str
    chunk_index: int
    score: float
    text: str
    source_version: int
    generation: str
    model_id: str
    tenant: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    below_threshold: bool | None = None
    """True when the score is under the generation's threshold (None: no threshold)."""


@dataclass(frozen=True)
class SearchResponse:
    generation: str
    index: str
    model_id: str
    results: list[SearchResult]
    threshold: float | None = None
    """The generation's calibrated minimum score: a top hit below it is unlikely to be relevant.
    Scores are only comparable within one generation, so an app's cut-off should follow this."""
    retrieval: str = "vector"
    precision: str = "float32"


def resolve_generation(
    registry: Registry, index: ChunkIndex, alias: str, generation_id: str | None
) -> Generation:
    """The named generation (only while it receives changes), or the one the alias serves."""
    if generation_id:
        return ensure_searchable(registry.get(generation_id))
    target = index.alias_target(alias)
    if target is None:
        raise UnknownGenerationError(f"alias {alias!r} serves no index yet: run a sync or a rebuild first")
    for gen in registry.list():
        if gen.index_name == target:
            return gen
    raise UnknownGenerationError(f"alias {alias!r} points at {target!r}, which no registered generation owns")


def ensure_searchable(gen: Generation) -> Generation:
    """Write targets (active, standby, a candidate being backfilled) are kept true to the source;
    any other index is frozen at some past state and may hold docs revoked or deleted since."""
    if gen.write_target or gen.status is GenerationStatus.ACTIVE:
        return gen
    status = gen.status.value
    if gen.status is GenerationStatus.RETIRED:
        why = "is retired: its index was deleted and receives no changes"
    elif gen.status is GenerationStatus.FAILED:
        verb = "was rejected" if "rejected_reason" in (gen.report or {}) else "failed"
        why = (
            f"{verb} (status {status}) and no longer receives changes: its index may return docs "
            "revoked or deleted since"
        )
    else:
        why = f"is {status} and not yet a write target: it receives no changes"
    raise GenerationNotSearchableError(
        f"generation {gen.id} {why}, so it cannot be searched; inspect it through its evaluation "
        f"report: dynembed generations --show {gen.id}",
        gen.id,
        status,
    )


def search(
    text: str,
    principal: str | Sequence[str],
    *,
    registry: Registry,
    index: ChunkIndex,
    embedder_for: Callable[[ModelSpec], Embedder],
    alias: str,
    k: int = 10,
    filters: Mapping[str, Any] | None = None,
    tenant: str | None = None,
    generation: str | None = None,
    public_principal: str = "public",
    tenant_isolation: bool = False,
    signals: QuerySignals | None = None,
    internal: bool = False,
) -> SearchResponse:
    """``signals`` hears of live searches (through the alias) once the response is built; a
    search naming its generation (evaluations, shadow runs) is not live traffic. ``internal``:
    a caller inside dynembed (the end-to-end sentinel), the only one allowed the sentinel's
    reserved principal and tenant."""
    started = time.perf_counter()
    if tenant_isolation and not tenant:
        raise AccessDeniedError("tenant isolation is on: a search must name its tenant (none was given)")
    if not text.strip():
        raise ValueError("search text is empty")
    if not internal:
        refuse_reserved(principal, tenant)
    if not 1 <= k <= 1000:
        raise ValueError(f"k must be between 1 and 1000, got {k}")
    gen = resolve_generation(registry, index, alias, generation)
    embedder = embedder_for(gen.model)
    if embedder.spec.model_id != gen.model.model_id:
        raise ModelMismatchError(
            f"generation {gen.id} holds vectors of {gen.model.model_id}; refusing a query embedded by "
            f"{embedder.spec.model_id}"
        )
    vector = embedder.embed_query(text)
    if len(vector) != gen.model.dimension:
        raise ModelMismatchError(
            f"query vector has {len(vector)} dimensions, generation {gen.id} has {gen.model.dimension}"
        )
    query_filter = access_filter(principal, tenant, public_principal=public_principal, extra=filters)
    # With a named generation, search its own index; else the alias (what production serves).
    target = gen.index_name if generation else alias
    hits = index.search(target, index_search_for(gen, vector, text, k, query_filter))
    threshold = gen.threshold.value if gen.threshold is not None else None
    results = []
    for hit in hits:
        src = hit.source
        if src.get("model_id") != gen.model.model_id:
            raise ModelMismatchError(
                f"chunk {hit.id} was embedded by {src.get('model_id')}, the query by {gen.model.model_id}"
            )
        results.append(
            SearchResult(
                doc_id=src["doc_id"],
                chunk_key=src["chunk_key"],
                chunk_index=int(src.get("chunk_index", 0)),
                score=hit.score,
                text=src.get("text", ""),
                source_version=int(src["source_version"]),
                generation=src.get("generation", gen.id),
                model_id=src["model_id"],
                tenant=src.get("tenant"),
                metadata=src.get("metadata") or {},
                below_threshold=None if threshold is None else hit.score < threshold,
            )
        )
    response = SearchResponse(
        generation=gen.id,
        index=gen.index_name,
        model_id=gen.model.model_id,
        results=results,
        threshold=threshold,
        retrieval=gen.retrieval.describe(),
        precision=gen.vectors.describe(),
    )
    if signals is not None and generation is None and not internal:  # the sentinel is no user
        signals.observe(live_query(text, principal, tenant, filters, k, response, vector, started))
    return response


def live_query(
    text: str,
    principal: str | Sequence[str],
    tenant: str | None,
    filters: Mapping[str, Any] | None,
    k: int,
    response: SearchResponse,
    vector: Sequence[float],
    started: float,
) -> LiveQuery:
    return LiveQuery(
        text=text,
        principals=(principal,) if isinstance(principal, str) else tuple(principal),
        tenant=tenant,
        filters=filters,
        k=k,
        generation=response.generation,
        model_id=response.model_id,
        vector=vector,
        hits=tuple((r.doc_id, r.score) for r in response.results),
        latency_ms=(time.perf_counter() - started) * 1000.0,
    )


def index_search_for(
    gen: Generation, vector: Sequence[float], text: str, k: int, query_filter: Mapping[str, Any]
) -> IndexSearch:
    """The index request for one query against ``gen``: its retrieval and vector settings."""
    return IndexSearch(
        vector=vector,
        k=k,
        filter=query_filter,
        text=text,
        retrieval=gen.retrieval,
        vectors=gen.vectors,
        quantizer=gen.quantizer,
        pipeline=search_pipeline_name(gen),
    )


def refuse_reserved(principal: str | Sequence[str], tenant: str | None) -> None:
    """The sentinel's principal and tenant are dynembed's own: no caller may search as them."""
    principals = [principal] if isinstance(principal, str) else list(principal)
    if SENTINEL_PRINCIPAL in principals:
        raise AccessDeniedError(f"principal {SENTINEL_PRINCIPAL!r} is reserved for dynembed's sentinel")
    if tenant == SENTINEL_TENANT:
        raise AccessDeniedError(f"tenant {SENTINEL_TENANT!r} is reserved for dynembed's sentinel")
