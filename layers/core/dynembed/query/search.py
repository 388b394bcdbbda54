"""Query flow: embed the text with the serving generation's model, retrieve as the generation
says (k-NN, or hybrid BM25 + k-NN) with the access filter inside every sub-query, return chunks
with their provenance and the generation's calibrated score threshold (DESIGN.md flow 3,
invariant I1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynembed.core.errors import ModelMismatchError, UnknownGenerationError
from dynembed.core.models import Generation, ModelSpec
from dynembed.core.ports import ChunkIndex, Embedder, IndexSearch, Registry
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
    """The named generation, or the one the alias serves."""
    if generation_id:
        return registry.get(generation_id)
    target = index.alias_target(alias)
    if target is None:
        raise UnknownGenerationError(f"alias {alias!r} serves no index yet: run a sync or a rebuild first")
    for gen in registry.list():
        if gen.index_name == target:
            return gen
    raise UnknownGenerationError(f"alias {alias!r} points at {target!r}, which no registered generation owns")


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
) -> SearchResponse:
    if not text.strip():
        raise ValueError("search text is empty")
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
    return SearchResponse(
        generation=gen.id,
        index=gen.index_name,
        model_id=gen.model.model_id,
        results=results,
        threshold=threshold,
        retrieval=gen.retrieval.describe(),
        precision=gen.vectors.describe(),
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


def rank_docs(results: Sequence[SearchResult]) -> list[str]:
    """Doc ids by their best chunk, for document-level evaluation."""
    return list(dict.fromkeys(r.doc_id for r in results))
