"""Retrieval and vector settings as ops write them: validated with every wrong field named,
part of the generation's identity, recorded in the registry fake, and mapped to the engine's
index and search-pipeline JSON."""

from __future__ import annotations

from typing import Any

import pytest

from dynembed.core.errors import ConfigError
from dynembed.core.models import (
    ChunkerSpec,
    FusionMethod,
    Generation,
    ModelSpec,
    RetrievalSpec,
    VectorPrecision,
    VectorSpec,
)
from dynembed.index.filters import access_filter, hybrid_query, knn_query, lexical_clause
from dynembed.index.mapping import (
    embedding_field,
    index_body,
    search_pipeline_body,
    search_pipeline_name,
)
from dynembed.rebuild.generations import generation_id_for, new_generation
from dynembed.rebuild.inputs import parse_rebuild_input
from tests.events import load_event

pytestmark = pytest.mark.unit

MODEL = ModelSpec(provider="t", name="mini", dimension=384)
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def generation(**settings: Any) -> Generation:
    return new_generation(MODEL, ChunkerSpec(), "chunks", generation_id="g1", **settings)


# ---- validation --------------------------------------------------------------------------------


def test_hybrid_defaults_are_filled_and_vector_settings_stay_empty() -> None:
    # GIVEN the shortest inputs for each mode
    hybrid = parse_rebuild_input({"model": "hash-256", "retrieval": "hybrid"}).retrieval
    rrf = parse_rebuild_input(
        {"model": "hash-256", "retrieval": {"mode": "hybrid", "fusion": "rrf"}}
    ).retrieval
    vector = parse_rebuild_input({"model": "hash-256"}).retrieval
    # THEN hybrid gets its documented defaults, rrf its rank constant, vector nothing
    assert (hybrid.lexical_weight, hybrid.fusion, hybrid.candidates, hybrid.analyzer) == (
        0.3,
        FusionMethod.LINEAR,
        100,
        "english",
    )
    assert hybrid.rank_constant is None and rrf.rank_constant == 60
    assert vector == RetrievalSpec() and vector.lexical_weight is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"retrieval": {"mode": "hybird"}}, "retrieval.mode: Input should be 'vector' or 'hybrid'"),
        (
            {"retrieval": {"mode": "hybrid", "lexical_weight": 1.5}},
            "retrieval.lexical_weight: Input should be less than or equal to 1",
        ),
        (
            {"retrieval": {"mode": "hybrid", "fusion": "sum"}},
            "retrieval.fusion: Input should be 'linear' or 'rrf'",
        ),
        ({"retrieval": {"lexical_weight": 0.5}}, "retrieval: lexical_weight: only with mode 'hybrid'"),
        (
            {"retrieval": {"mode": "hybrid", "rank_constant": 10}},
            "retrieval: rank_constant: only with fusion 'rrf'",
        ),
        (
            {"retrieval": {"mode": "hybrid", "fusion": "rrf", "rank_constant": 0}},
            "retrieval.rank_constant: Input should be greater than or equal to 1",
        ),
        ({"retrieval": {"mode": "hybrid", "weight": 0.5}}, "retrieval.weight: unknown field"),
        (
            {"vectors": {"precision": "int4"}},
            "vectors.precision: Input should be 'float32', 'float16', 'byte' or 'binary'",
        ),
        ({"vectors": {"on_disk": True}}, "vectors: on_disk: needs a compressed precision"),
        ({"vectors": {"oversample": 2.0}}, "vectors: oversample: full-precision vectors need no rescoring"),
        (
            {"vectors": {"precision": "binary", "oversample": 200}},
            "vectors.oversample: Input should be less than or equal to 100",
        ),
        (
            {"threshold": {"method": "precision"}},
            "threshold: target_precision: required with method 'precision'",
        ),
        (
            {"threshold": {"target_precision": 0.9}},
            "threshold: target_precision: only with method 'precision'",
        ),
    ],
)
def test_each_wrong_setting_is_named(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rebuild_input({"model": "hash-256", **raw})
    assert message in str(caught.value)


def test_several_wrong_settings_are_all_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rebuild_input(
            {
                "model": "hash-256",
                "retrieval": {"mode": "hybrid", "fusion": "x"},
                "vectors": {"precision": "y"},
            }
        )
    assert "retrieval.fusion" in str(caught.value) and "vectors.precision" in str(caught.value)


def test_the_input_survives_the_workflow_round_trip() -> None:
    # GIVEN a normalised input, as the Validate step hands it to the next states
    config = parse_rebuild_input(load_event("rebuild_input_binary"))
    carried = config.model_dump(mode="json")
    # WHEN a later step parses it again THEN nothing changed
    assert parse_rebuild_input(carried) == config
    assert config.vectors == VectorSpec(precision="binary", on_disk=True, oversample=3.0)


# ---- identity ----------------------------------------------------------------------------------


def test_default_settings_keep_the_old_id_and_any_other_setting_changes_it() -> None:
    chunker = ChunkerSpec()
    plain = generation_id_for(MODEL, chunker, NOW)
    assert plain == f"g20260101000000-mini-{chunker.version}"
    variants = [
        RetrievalSpec(mode="hybrid"),
        RetrievalSpec(mode="hybrid", lexical_weight=0.5),
        RetrievalSpec(mode="hybrid", fusion="rrf"),
        RetrievalSpec(mode="hybrid", fusion="rrf", rank_constant=20),
    ]
    precisions = [
        VectorSpec(precision=p, on_disk=disk, oversample=o)
        for p in ("float16", "byte", "binary")
        for disk in (False, True)
        for o in (None, 2.0)
    ]
    ids = [generation_id_for(MODEL, chunker, NOW, retrieval=r) for r in variants]
    ids += [generation_id_for(MODEL, chunker, NOW, vectors=v) for v in precisions]
    ids.append(generation_id_for(MODEL, chunker, NOW, retrieval=variants[0], vectors=precisions[0]))
    assert len(set(ids)) == len(ids) and plain not in ids
    assert all(len(i) <= 80 for i in ids)
    assert "hybrid-rrf" in ids[2] and "binary-disk" in ids[4 + 10]


def test_a_long_model_name_keeps_the_settings_digest() -> None:
    long_model = MODEL.model_copy(update={"name": "x" * 70})
    a = generation_id_for(long_model, ChunkerSpec(), NOW, vectors=VectorSpec(precision="byte"))
    b = generation_id_for(long_model, ChunkerSpec(), NOW, vectors=VectorSpec(precision="float16"))
    assert a != b and len(a) == len(b) == 80


def test_the_generation_carries_its_settings() -> None:
    gen = generation(retrieval=RetrievalSpec(mode="hybrid"), vectors=VectorSpec(precision="byte"))
    assert gen.retrieval.hybrid and gen.vectors.precision is VectorPrecision.BYTE


# ---- index mapping -----------------------------------------------------------------------------


def test_float32_vector_generations_keep_todays_mapping() -> None:
    field = embedding_field(generation())
    assert field == {
        "type": "knn_vector",
        "dimension": 384,
        "method": {
            "name": "hnsw",
            "engine": "faiss",
            "space_type": "cosinesimil",
            "parameters": {"m": 16, "ef_construction": 128},
        },
    }
    body = index_body(generation())
    assert body["mappings"]["properties"]["text"] == {"type": "text"}
    assert "search.default_pipeline" not in body["settings"]["index"]


@pytest.mark.parametrize(
    ("vectors", "mode", "level", "engine"),
    [
        (VectorSpec(precision="float16"), "in_memory", "2x", "faiss"),
        (VectorSpec(precision="byte"), "in_memory", "4x", "lucene"),
        (VectorSpec(precision="binary"), "in_memory", "32x", "faiss"),
        (VectorSpec(precision="binary", on_disk=True, oversample=3.0), "on_disk", "32x", "faiss"),
        (VectorSpec(precision="float16", on_disk=True), "on_disk", "2x", "faiss"),
        (VectorSpec(precision="byte", on_disk=True), "on_disk", "4x", "lucene"),
    ],
)
def test_each_precision_maps_to_a_compression_level(
    vectors: VectorSpec, mode: str, level: str, engine: str
) -> None:
    # WHEN the field of a generation with this precision is built (the adapter asked for faiss)
    field = embedding_field(generation(vectors=vectors), engine="faiss")
    # THEN documents stay float and the engine picks the encoder for the compression level
    assert field["data_type"] == "float"
    assert (field["mode"], field["compression_level"], field["method"]["engine"]) == (mode, level, engine)
    assert "encoder" not in field["method"]["parameters"]  # compression_level excludes an encoder


def test_a_hybrid_generation_analyses_its_text_and_names_its_pipeline() -> None:
    gen = generation(retrieval=RetrievalSpec(mode="hybrid"))
    name = search_pipeline_name(gen)
    body = index_body(gen, search_pipeline=name)
    assert name == "chunks-g1-hybrid"
    assert body["mappings"]["properties"]["text"] == {"type": "text", "analyzer": "english"}
    assert body["settings"]["index"]["search.default_pipeline"] == name
    assert search_pipeline_name(generation()) is None


def test_linear_fusion_is_a_normalization_processor_with_positional_weights() -> None:
    gen = generation(retrieval=RetrievalSpec(mode="hybrid", lexical_weight=0.3))
    assert search_pipeline_body(gen)["phase_results_processors"] == [
        {
            "normalization-processor": {
                "normalization": {"technique": "min_max"},
                "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.3, 0.7]}},
            }
        }
    ]


def test_rrf_fusion_is_a_score_ranker_processor() -> None:
    gen = generation(
        retrieval=RetrievalSpec(mode="hybrid", fusion="rrf", rank_constant=40, lexical_weight=0.5)
    )
    assert search_pipeline_body(gen)["phase_results_processors"] == [
        {
            "score-ranker-processor": {
                "combination": {
                    "technique": "rrf",
                    "rank_constant": 40,
                    "parameters": {"weights": [0.5, 0.5]},
                }
            }
        }
    ]


def test_a_vector_generation_has_no_pipeline_body() -> None:
    with pytest.raises(ValueError, match="no search pipeline"):
        search_pipeline_body(generation())


# ---- query DSL ----------------------------------------------------------------------------------


def test_the_hybrid_query_filters_both_sub_queries_lexical_first() -> None:
    # GIVEN a principal's access filter
    acl = access_filter(["g1"], "acme")
    # WHEN the hybrid body is built for 50 hits per sub-query, with rescoring
    body = hybrid_query("python lists", [0.5, 0.5], 50, acl, oversample=3.0)
    lexical, knn = body["query"]["hybrid"]["queries"]
    # THEN the same filter sits in the bool.filter of the match and inside the knn clause
    assert lexical == {"bool": {"must": [{"match": {"text": {"query": "python lists"}}}], "filter": [acl]}}
    assert knn == {
        "knn": {
            "embedding": {
                "vector": [0.5, 0.5],
                "k": 50,
                "filter": acl,
                "rescore": {"oversample_factor": 3.0},
            }
        }
    }
    assert body["size"] == 50 and "post_filter" not in body
    assert body["_source"] == {"excludes": ["embedding"]}


def test_knn_rescoring_is_only_sent_when_asked() -> None:
    assert "rescore" not in knn_query([1.0], 3)["query"]["knn"]["embedding"]
    assert knn_query([1.0], 3, None, 2.0)["query"]["knn"]["embedding"]["rescore"] == {
        "oversample_factor": 2.0
    }


def test_an_empty_lexical_query_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        lexical_clause("  ")
