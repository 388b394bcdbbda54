"""The chunk index's settings and mapping, derived from a Generation and nothing else.

A pure function so that the mapping a generation gets is reviewable in a unit test and the
same on a laptop (osmem-server) and on Amazon OpenSearch Service.
"""

from __future__ import annotations

from typing import Any, Literal

from dynembed.core.models import FusionMethod, Generation, RetrievalSpec, VectorPrecision

Engine = Literal["faiss", "lucene"]
ENGINES: tuple[Engine, ...] = ("faiss", "lucene")
"""nmslib is deprecated in OpenSearch 2.19+ and cannot be chosen."""

EMBEDDING_FIELD = "embedding"

DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 128
DEFAULT_EF_SEARCH = 100

KEYWORD_FIELDS = (
    "doc_id",
    "chunk_key",
    "content_hash",
    "model_id",
    "chunker_version",
    "generation",
    "tenant",
    "source_type",
    "acl",
)


def index_body(
    generation: Generation,
    *,
    engine: Engine = "faiss",
    m: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    ef_search: int = DEFAULT_EF_SEARCH,
    search_pipeline: str | None = None,
) -> dict[str, Any]:
    """Body of ``PUT /<generation.index_name>``.

    ``search_pipeline`` (hybrid generations, native mode) becomes the index's default search
    pipeline; create it first (``search_pipeline_body``).

    The top level is ``dynamic: strict`` so a misspelt field fails the write (and names the field)
    instead of silently creating an unsearchable mapping; ``metadata`` is the one open object,
    with strings mapped as ``keyword`` so term filters on ``metadata.<name>`` match exactly.
    """
    if engine not in ENGINES:
        raise ValueError(f"k-NN engine must be one of {ENGINES}, not {engine!r}")
    properties: dict[str, Any] = {
        EMBEDDING_FIELD: embedding_field(generation, engine=engine, m=m, ef_construction=ef_construction),
        "text": text_field(generation.retrieval),
        "chunk_index": {"type": "integer"},
        "source_version": {"type": "long"},
        "schema_version": {"type": "integer"},
        # Epoch seconds as floats: range queries and lag arithmetic without date parsing.
        "indexed_at": {"type": "double"},
        "source_updated_at": {"type": "double"},
        "metadata": {"type": "object", "dynamic": True},
    }
    properties.update({name: {"type": "keyword"} for name in KEYWORD_FIELDS})
    index_settings: dict[str, Any] = {"knn": True, "knn.algo_param.ef_search": ef_search}
    if search_pipeline:
        # Searches of this index that name no pipeline still fuse the way the generation says.
        index_settings["search.default_pipeline"] = search_pipeline
    return {
        "settings": {"index": index_settings},
        "mappings": {
            "dynamic": "strict",
            "dynamic_templates": [
                {
                    "metadata_strings_as_keywords": {
                        "path_match": "metadata.*",
                        "match_mapping_type": "string",
                        "mapping": {"type": "keyword", "ignore_above": 2048},
                    }
                }
            ],
            "properties": properties,
        },
    }


def embedding_field(
    generation: Generation,
    *,
    engine: Engine = "faiss",
    m: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
) -> dict[str, Any]:
    """The ``knn_vector`` field for the generation's model and vector settings.

    Documents always carry float32 vectors. A compressed precision is asked for with
    ``compression_level`` (k-NN >= 2.17), which lets the engine choose its encoder: 2x faiss
    scalar quantizer fp16, 4x Lucene scalar quantizer (7 bits; Lucene is the only 4x engine),
    32x faiss 1-bit binary quantization. ``mode: on_disk`` keeps only the quantized graph in
    memory and re-scores from the full-precision vectors on disk.
    """
    spec = generation.vectors
    field: dict[str, Any] = {"type": "knn_vector", "dimension": generation.model.dimension}
    if spec.quantized:
        field.update(
            data_type="float",
            mode="on_disk" if spec.on_disk else "in_memory",
            compression_level=spec.compression_level,
        )
        engine = "lucene" if spec.precision is VectorPrecision.BYTE else "faiss"
    field["method"] = {
        "name": "hnsw",
        "engine": engine,
        "space_type": generation.model.space.value,
        "parameters": {"m": m, "ef_construction": ef_construction},
    }
    return field


def text_field(retrieval: RetrievalSpec) -> dict[str, Any]:
    """The chunk's passage; a hybrid generation's BM25 sub-query searches it with its analyzer."""
    if retrieval.hybrid and retrieval.analyzer:
        return {"type": "text", "analyzer": retrieval.analyzer}
    return {"type": "text"}


def search_pipeline_name(generation: Generation) -> str | None:
    """The search pipeline a hybrid generation's queries run through (None for vector)."""
    return f"{generation.index_name}-hybrid" if generation.retrieval.hybrid else None


def search_pipeline_body(generation: Generation) -> dict[str, Any]:
    """Body of ``PUT /_search/pipeline/<name>``: the fusion the generation's retrieval names.

    Weights are positional (``[lexical, vector]``, the order of the hybrid sub-queries).
    ``linear`` needs OpenSearch >= 2.10; ``rrf`` with weights >= 3.1 (2.19 has RRF without
    weights, which doubles every score at equal weights and ranks the same).
    """
    retrieval = generation.retrieval
    if not retrieval.hybrid:
        raise ValueError(f"generation {generation.id} retrieves by vector only: no search pipeline")
    weights = [round(w, 6) for w in retrieval.weights()]
    processor: dict[str, Any]
    if retrieval.fusion is FusionMethod.RRF:
        processor = {
            "score-ranker-processor": {
                "combination": {
                    "technique": "rrf",
                    "rank_constant": retrieval.rank_constant,
                    "parameters": {"weights": weights},
                }
            }
        }
    else:
        processor = {
            "normalization-processor": {
                "normalization": {"technique": "min_max"},
                "combination": {"technique": "arithmetic_mean", "parameters": {"weights": weights}},
            }
        }
    return {
        "description": f"dynembed hybrid retrieval of generation {generation.id}: {retrieval.describe()}",
        "phase_results_processors": [processor],
    }


def embedding_dimension(mapping: dict[str, Any]) -> int | None:
    """The ``embedding`` dimension in a ``GET /<index>/_mapping`` entry (``{"mappings": ...}``)."""
    field = mapping.get("mappings", {}).get("properties", {}).get(EMBEDDING_FIELD, {})
    dimension = field.get("dimension")
    return int(dimension) if dimension is not None else None


def embedding_space(mapping: dict[str, Any]) -> str | None:
    """The space type of ``embedding`` (method-level, else field-level as OpenSearch 2.x allows)."""
    field = mapping.get("mappings", {}).get("properties", {}).get(EMBEDDING_FIELD, {})
    space = field.get("method", {}).get("space_type") or field.get("space_type")
    return str(space) if space else None
