"""The chunk index's settings and mapping, derived from a Generation and nothing else.

A pure function so that the mapping a generation gets is reviewable in a unit test and the
same on a laptop (osmem-server) and on Amazon OpenSearch Service.
"""

from __future__ import annotations

from typing import Any, Literal

from dynembed.core.models import Generation

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
) -> dict[str, Any]:
    """Body of ``PUT /<generation.index_name>``.

    The top level is ``dynamic: strict`` so a misspelt field fails the write (and names the field)
    instead of silently creating an unsearchable mapping; ``metadata`` is the one open object,
    with strings mapped as ``keyword`` so term filters on ``metadata.<name>`` match exactly.
    """
    if engine not in ENGINES:
        raise ValueError(f"k-NN engine must be one of {ENGINES}, not {engine!r}")
    properties: dict[str, Any] = {
        EMBEDDING_FIELD: {
            "type": "knn_vector",
            "dimension": generation.model.dimension,
            "method": {
                "name": "hnsw",
                "engine": engine,
                "space_type": generation.model.space.value,
                "parameters": {"m": m, "ef_construction": ef_construction},
            },
        },
        "text": {"type": "text"},
        "chunk_index": {"type": "integer"},
        "source_version": {"type": "long"},
        "schema_version": {"type": "integer"},
        # Epoch seconds as floats: range queries and lag arithmetic without date parsing.
        "indexed_at": {"type": "double"},
        "source_updated_at": {"type": "double"},
        "metadata": {"type": "object", "dynamic": True},
    }
    properties.update({name: {"type": "keyword"} for name in KEYWORD_FIELDS})
    return {
        "settings": {
            "index": {
                "knn": True,
                "knn.algo_param.ef_search": ef_search,
            }
        },
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
