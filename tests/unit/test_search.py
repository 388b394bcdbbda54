"""The query flow on fakes (``dynembed.query.search``): the serving generation's model embeds the
query (I1), the access filter is inside the k-NN query, results carry their provenance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import ValidationError

from dynembed.core.errors import ModelMismatchError, UnknownGenerationError
from dynembed.core.models import ModelSpec
from dynembed.core.ports import Embedder
from dynembed.embedders.hashing import HashingEmbedder
from dynembed.quality.evaluation import rank_docs
from dynembed.query.request import SearchRequest
from dynembed.query.search import SearchResponse
from dynembed.rebuild.generations import create, new_generation
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit


def indexed_harness() -> Harness:
    h = Harness()
    h.write("pub", body=paragraphs("python", "packaging"), acl=["public"], tenant="acme")
    h.write("hr", body=paragraphs("python", "salaries"), acl=["hr"], tenant="acme")
    h.write("other", body=paragraphs("python", "packaging"), acl=["public"], tenant="globex", category="faq")
    h.run()
    return h


def run(h: Harness, text: str, principal: str | Sequence[str], **options: Any) -> SearchResponse:
    response: SearchResponse = h.services().search(text, principal, **options)
    return response


def test_results_carry_provenance_and_come_from_the_serving_generation() -> None:
    # GIVEN three indexed docs
    h = indexed_harness()
    # WHEN anyone searches through the alias
    response = run(h, "python packaging", "anyone")
    # THEN hits come from the active generation, embedded by its model, best first
    assert (response.generation, response.index, response.model_id) == (
        h.generation.id,
        h.generation.index_name,
        h.generation.model.model_id,
    )
    assert response.results and all(r.model_id == h.generation.model.model_id for r in response.results)
    assert [r.score for r in response.results] == sorted((r.score for r in response.results), reverse=True)
    top = response.results[0]
    assert top.doc_id in {"pub", "other"} and top.source_version == 1 and top.generation == h.generation.id
    assert top.text and top.chunk_key


def test_a_reader_never_sees_a_chunk_its_principals_do_not_allow() -> None:
    h = indexed_harness()
    # An outsider sees the public docs only, however many results are asked for.
    assert set(rank_docs(r.doc_id for r in run(h, "python salaries", "outsider", k=50).results)) == {
        "pub",
        "other",
    }
    # A member of hr sees the hr doc too, and ranks it first for its own words.
    assert rank_docs(r.doc_id for r in run(h, "python salaries", ["u1", "hr"], k=50).results)[0] == "hr"


def test_tenant_and_metadata_filters_narrow_the_results() -> None:
    h = indexed_harness()
    assert set(rank_docs(r.doc_id for r in run(h, "python", "x", tenant="acme", k=50).results)) == {"pub"}
    assert set(
        rank_docs(r.doc_id for r in run(h, "python", "x", filters={"category": "faq"}, k=50).results)
    ) == {"other"}
    [only] = {r.doc_id: r for r in run(h, "python", "x", filters={"category": "faq"}).results}.values()
    assert only.tenant == "globex" and only.metadata == {"category": "faq"}


def test_k_bounds_the_number_of_chunks() -> None:
    h = indexed_harness()
    assert len(run(h, "python", "x", k=1).results) == 1


def test_a_named_generation_is_searched_in_its_own_index() -> None:
    # GIVEN a second, empty generation of the same model that the alias does not serve, being built
    # as a write target (only write targets may be searched by id)
    h = indexed_harness()
    other = create(
        h.registry, h.index, new_generation(h.embedder.spec, h.chunker, "chunks", generation_id="g2")
    )
    h.registry.update("g2", write_target=True)
    # WHEN it is searched by id  THEN its own (empty) index answers, not the alias
    response = run(h, "python", "x", generation="g2")
    assert (response.generation, response.index, response.results) == ("g2", other.index_name, [])


@pytest.mark.parametrize(("text", "k"), [("  ", 10), ("python", 0), ("python", 1001)])
def test_bad_input_is_refused(text: str, k: int) -> None:
    with pytest.raises(ValueError):
        run(indexed_harness(), text, "x", k=k)


def test_an_alias_that_serves_nothing_is_named_in_the_error() -> None:
    h = Harness()
    h.index.aliases.clear()
    with pytest.raises(UnknownGenerationError, match="serves no index"):
        run(h, "python", "x")


def test_an_alias_on_an_index_no_generation_owns_is_refused() -> None:
    h = Harness()
    h.index.aliases[h.alias] = "stray-index"
    with pytest.raises(UnknownGenerationError, match="stray-index"):
        run(h, "python", "x")


class OtherModel:
    """An embedder for another model: its vectors live in another space."""

    def __init__(self, spec: ModelSpec, dimension: int | None = None) -> None:
        self.spec = spec
        self.dimension = dimension or spec.dimension

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0] * self.dimension for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return [1.0] * self.dimension

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_documents(texts)


def test_a_query_embedded_by_another_model_is_refused_I1() -> None:
    h = indexed_harness()
    wrong = OtherModel(ModelSpec(provider="other", name="model", dimension=256))
    svc = h.services()
    svc._embedders[h.generation.model.model_id] = wrong
    with pytest.raises(ModelMismatchError, match="refusing a query embedded by other/model"):
        svc.search("python", "x")


def test_a_query_vector_of_the_wrong_dimension_is_refused() -> None:
    h = indexed_harness()
    svc = h.services()
    svc._embedders[h.generation.model.model_id] = OtherModel(h.generation.model, dimension=3)
    with pytest.raises(ModelMismatchError, match="3 dimensions"):
        svc.search("python", "x")


def test_a_chunk_embedded_by_another_model_is_never_returned_I1() -> None:
    # GIVEN a chunk in the serving index that claims another model (a bug elsewhere)
    h = indexed_harness()
    store = h.index.indices[h.generation.index_name]
    next(iter(store.values()))["model_id"] = "other/model@1:256"
    # WHEN a search would return it  THEN the search fails rather than mix spaces
    with pytest.raises(ModelMismatchError, match="other/model"):
        run(h, "python packaging", "x", k=50)


def test_rank_docs_keeps_each_docs_best_chunk_order() -> None:
    h = indexed_harness()
    results = run(h, "python packaging", "x", k=50).results
    ranked = rank_docs(r.doc_id for r in results)
    assert ranked == list(dict.fromkeys(r.doc_id for r in results)) and len(ranked) == len(set(ranked))


def test_the_search_request_names_the_wrong_field() -> None:
    assert SearchRequest(text="python", principal=["u", "g"]).k == 10
    with pytest.raises(ValidationError, match="k"):
        SearchRequest(text="python", principal="u", k=0)
    with pytest.raises(ValidationError, match="colour"):
        SearchRequest.model_validate({"text": "python", "principal": "u", "colour": "red"})


def test_the_harness_embedder_is_the_generation_model() -> None:
    # Guard for the tests above: the harness serves hash-256 through Services.embedder_for.
    h = Harness()
    embedder: Embedder = h.services().embedder_for(h.generation.model)
    assert embedder.spec == HashingEmbedder().spec
