"""The model catalog: short ids in, embedders and specs out, nothing loaded until used."""

from __future__ import annotations

import pytest

from dynembed.core.errors import ModelMismatchError, UnknownModelError
from dynembed.core.ports import Embedder
from dynembed.embedders import (
    MODELS_TABLE_COLUMNS,
    CountingEmbedder,
    HashingEmbedder,
    available_models,
    embedder_for_spec,
    format_models_table,
    get_embedder,
    known_model_ids,
    spec_for,
)
from dynembed.embedders import bedrock as bedrock_module
from dynembed.embedders import local as local_module

pytestmark = pytest.mark.unit

EXPECTED_IDS = {
    "hash-256",
    "minilm",
    "static-64",
    "bedrock-titan-v2-1024",
    "bedrock-titan-v2-512",
    "bedrock-titan-v2-256",
    "bedrock-cohere-en-v3",
    "bedrock-cohere-multilingual-v3",
}


@pytest.fixture(autouse=True)
def nothing_may_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building an embedder must not load a model or a client: make both fail loudly."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("loaded at construction time")

    monkeypatch.setattr(local_module, "_load_minilm", refuse)
    monkeypatch.setattr(local_module, "_load_static", refuse)
    monkeypatch.setattr(bedrock_module, "default_bedrock_client", refuse)


def test_catalog_knows_the_documented_ids() -> None:
    # GIVEN / WHEN the catalog is listed
    # THEN it holds exactly the ids ops are told about
    assert set(known_model_ids()) == EXPECTED_IDS


@pytest.mark.parametrize("model_id", sorted(EXPECTED_IDS))
def test_spec_name_round_trips_to_the_same_embedder(model_id: str) -> None:
    # GIVEN a spec looked up without building anything
    spec = spec_for(model_id)

    # WHEN an embedder is built from the id, and again from the spec's name
    embedder = get_embedder(model_id)
    again = get_embedder(spec.name)

    # THEN all three agree, and the embedder implements the port
    assert spec.name == model_id
    assert embedder.spec == spec == again.spec
    assert spec.provider in {"local", "bedrock", "hash"}
    assert isinstance(embedder, Embedder)


def test_model_ids_are_distinct_across_the_catalog() -> None:
    # GIVEN every spec / WHEN their I1 ids are collected / THEN no two models share one
    model_ids = [spec_for(model_id).model_id for model_id in known_model_ids()]
    assert len(set(model_ids)) == len(model_ids)


@pytest.mark.parametrize("dimension", [256, 512, 1024])
def test_titan_ids_carry_their_dimension(dimension: int) -> None:
    # GIVEN / WHEN a Titan id with a dimension suffix / THEN the spec has that dimension
    assert spec_for(f"bedrock-titan-v2-{dimension}").dimension == dimension


@pytest.mark.parametrize("bad_id", ["all-MiniLM-L6-v2", "bedrock-titan-v2-300", "", "HASH-256"])
def test_unknown_id_names_every_known_id(bad_id: str) -> None:
    # GIVEN an id no provider knows
    # WHEN it is looked up, for a spec or for an embedder
    with pytest.raises(UnknownModelError) as spec_error:
        spec_for(bad_id)
    with pytest.raises(UnknownModelError) as embedder_error:
        get_embedder(bad_id)

    # THEN the message names the bad id and lists every valid one
    for error in (spec_error, embedder_error):
        message = str(error.value)
        assert repr(bad_id) in message
        assert all(model_id in message for model_id in EXPECTED_IDS)


def test_keyword_arguments_reach_the_constructor() -> None:
    # GIVEN / WHEN a local model is built with a batch size
    embedder = get_embedder("minilm", batch_size=8)

    # THEN the embedder uses it
    assert isinstance(embedder, local_module.MiniLMEmbedder)
    assert embedder.batch_size == 8


def test_local_model_loads_on_first_use_not_before() -> None:
    # GIVEN an embedder built while loading is forbidden (fixture)
    embedder = get_embedder("minilm")

    # WHEN it is first asked for a vector
    # THEN that is when the model loads
    with pytest.raises(AssertionError, match="loaded at construction time"):
        embedder.embed_query("hello")


def test_embedder_for_spec_accepts_the_stored_spec() -> None:
    # GIVEN a generation's stored spec
    stored = spec_for("bedrock-titan-v2-512")

    # WHEN its embedder is requested
    embedder = embedder_for_spec(stored)

    # THEN it is the embedder of that exact spec
    assert embedder.spec == stored


def test_embedder_for_spec_refuses_a_different_model_version() -> None:
    # GIVEN a stored spec from another version of the same short id
    stored = spec_for("hash-256").model_copy(update={"version": "0"})

    # WHEN its embedder is requested
    # THEN invariant I1 is defended: no silent cross-space queries
    with pytest.raises(ModelMismatchError, match="hash/hash-256@0:256"):
        embedder_for_spec(stored)


def test_available_models_reports_each_model_once() -> None:
    # GIVEN / WHEN the available models are listed
    infos = available_models()

    # THEN every id appears once with its spec's provider and dimension; hashing is always there
    assert [info.id for info in infos] == known_model_ids()
    for info in infos:
        assert (info.provider, info.dimension) == (spec_for(info.id).provider, spec_for(info.id).dimension)
    assert next(info for info in infos if info.id == "hash-256").installed


def test_models_table_rows_follow_the_columns() -> None:
    # GIVEN / WHEN the CLI table rows are built
    rows = format_models_table()

    # THEN one row per model, in column order, all strings
    assert MODELS_TABLE_COLUMNS == ("id", "provider", "dimension", "installed", "description")
    assert [row[0] for row in rows] == known_model_ids()
    assert rows[0][:4] == ("hash-256", "hash", "256", "yes")
    assert all(len(row) == len(MODELS_TABLE_COLUMNS) for row in rows)
    assert all(isinstance(cell, str) and cell for row in rows for cell in row)


class TestCountingEmbedder:
    def test_counts_texts_and_characters(self) -> None:
        # GIVEN a counting wrapper around the hashing embedder
        counting = CountingEmbedder(HashingEmbedder())

        # WHEN it embeds two documents in one call and one query
        counting.embed_documents(["abc", "de"])
        counting.embed_query("wxyz")

        # THEN documents and queries are counted apart and in total
        assert (counting.document_calls, counting.document_texts, counting.document_chars) == (1, 2, 5)
        assert (counting.query_calls, counting.query_chars) == (1, 4)
        assert (counting.texts, counting.chars) == (3, 9)

    def test_delegates_spec_and_vectors(self) -> None:
        # GIVEN an inner embedder and its wrapper
        inner = HashingEmbedder()
        counting: Embedder = CountingEmbedder(inner)

        # WHEN both embed the same texts
        # THEN the wrapper is invisible: same spec, same vectors
        assert counting.spec == inner.spec
        assert counting.embed_documents(["one", "two"]) == inner.embed_documents(["one", "two"])
        assert counting.embed_query("q") == inner.embed_query("q")

    def test_records_texts_when_asked_and_resets(self) -> None:
        # GIVEN a wrapper that records texts
        counting = CountingEmbedder(HashingEmbedder(), record_texts=True)
        counting.embed_documents(["first", "second"])
        counting.embed_documents(["third"])
        assert counting.embedded_texts == ["first", "second", "third"]

        # WHEN it is reset
        counting.reset()

        # THEN every count starts again from zero
        assert (counting.texts, counting.chars, counting.document_calls, counting.embedded_texts) == (
            0,
            0,
            0,
            [],
        )

    def test_failed_calls_are_not_counted(self) -> None:
        # GIVEN a wrapper around an embedder whose model cannot load (fixture)
        counting = CountingEmbedder(get_embedder("static-64"))

        # WHEN a call fails
        with pytest.raises(AssertionError):
            counting.embed_documents(["text"])

        # THEN nothing was embedded, so nothing is counted
        assert counting.texts == 0
