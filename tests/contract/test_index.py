"""The ChunkIndex port's contract, on InMemoryIndex and on OpenSearchChunkIndex (osmem-server,
exact k-NN): external versions (I2, I3), reads, pre-filtered k-NN, aliases (I6)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynembed.core.errors import ConfigError, DynembedError, IndexWriteError, VersionConflictError
from dynembed.core.models import Generation
from dynembed.core.ports import WriteReport
from dynembed.index.filters import access_filter
from tests.contract.conftest import IndexUnderTest
from tests.plugins.osmem import chunk_doc, generation_for


def fresh(ix: IndexUnderTest, dimension: int = 4, space: str = "cosinesimil") -> Generation:
    generation = generation_for(ix.name("chunks"), dimension=dimension, space=space)
    ix.index.ensure_index(generation)
    return generation


def ids_in(ix: IndexUnderTest, name: str) -> list[str]:
    ix.index.refresh(name)
    return sorted(cid for cid, _ in ix.index.iter_chunks(name, []))


class TestExternalVersions:
    def test_write_then_read_back_without_excluded_fields(self, index: IndexUnderTest) -> None:
        # GIVEN an index
        g = fresh(index)
        doc = chunk_doc("a", [1, 0, 0, 0], version=2, metadata={"lang": "en", "year": 2020})
        # WHEN a chunk is written
        assert index.index.write_chunks(g.index_name, [doc]) == WriteReport(written=1)
        # THEN it reads back as the JSON sent, with or without its vector; unknown ids are left out
        got = index.index.get_chunks(g.index_name, ["a:k0", "nope:k0"])
        assert got == {"a:k0": doc.model_dump(mode="json")}
        lean = index.index.get_chunks(g.index_name, ["a:k0"], exclude=["embedding", "text"])
        assert "embedding" not in lean["a:k0"] and "text" not in lean["a:k0"]
        assert lean["a:k0"]["metadata"] == {"lang": "en", "year": 2020}

    def test_an_older_or_equal_version_is_a_conflict_and_changes_nothing(self, index: IndexUnderTest) -> None:
        g = fresh(index)
        index.index.write_chunks(g.index_name, [chunk_doc("a", [1, 0, 0, 0], version=5, text="v5")])
        # WHEN version 4 and then 5 again arrive late
        report = index.index.write_chunks(
            g.index_name,
            [
                chunk_doc("a", [1, 0, 0, 0], version=4, text="v4"),
                chunk_doc("a", [1, 0, 0, 0], version=5, text="v5 again"),
            ],
        )
        # THEN both conflict and the stored chunk is still v5's
        assert report == WriteReport(conflicts=2)
        assert index.index.get_chunks(g.index_name, ["a:k0"])["a:k0"]["text"] == "v5"

    def test_explicit_versions_override_the_source_version(self, index: IndexUnderTest) -> None:
        g = fresh(index)
        doc = chunk_doc("a", [1, 0, 0, 0], version=1)
        index.index.write_chunks(g.index_name, [doc], [10])
        assert index.index.write_chunks(g.index_name, [doc], [9]) == WriteReport(conflicts=1)
        assert index.index.write_chunks(g.index_name, [doc], [11]) == WriteReport(written=1)

    def test_versions_must_match_the_docs_one_to_one(self, index: IndexUnderTest) -> None:
        g = fresh(index)
        with pytest.raises(ValueError):
            index.index.write_chunks(g.index_name, [chunk_doc("a", [1, 0, 0, 0])], [1, 2])

    def test_a_delete_leaves_a_tombstone_that_older_writes_cannot_pass_I3(
        self, index: IndexUnderTest
    ) -> None:
        # GIVEN a chunk at version 2, deleted at version 3
        g = fresh(index)
        index.index.write_chunks(g.index_name, [chunk_doc("a", [1, 0, 0, 0], version=2)])
        assert index.index.delete_chunks(g.index_name, [("a:k0", 3)]) == WriteReport(deleted=1)
        # WHEN a write at the delete's version arrives late  THEN it cannot resurrect the chunk
        assert index.index.write_chunks(
            g.index_name, [chunk_doc("a", [1, 0, 0, 0], version=3)]
        ) == WriteReport(conflicts=1)
        assert index.index.get_chunks(g.index_name, ["a:k0"]) == {}
        # AND a newer version (a recreation) is written
        assert index.index.write_chunks(
            g.index_name, [chunk_doc("a", [1, 0, 0, 0], version=4)]
        ) == WriteReport(written=1)

    def test_deletes_report_missing_and_conflicting_chunks(self, index: IndexUnderTest) -> None:
        g = fresh(index)
        index.index.write_chunks(g.index_name, [chunk_doc("a", [1, 0, 0, 0], version=5)])
        report = index.index.delete_chunks(g.index_name, [("a:k0", 4), ("ghost:k0", 1)])
        assert report == WriteReport(conflicts=1, missing=1)
        assert list(index.index.get_chunks(g.index_name, ["a:k0"])) == ["a:k0"]
        # A delete of a chunk that was never there still leaves its tombstone.
        assert index.index.write_chunks(
            g.index_name, [chunk_doc("ghost", [1, 0, 0, 0], version=1)]
        ) == WriteReport(conflicts=1)

    def test_a_vector_of_the_wrong_dimension_is_refused_by_chunk_id(self, index: IndexUnderTest) -> None:
        # GIVEN a 4-d index  WHEN a batch holds one 3-d vector
        g = fresh(index)
        good, bad = chunk_doc("good", [1, 0, 0, 0]), chunk_doc("bad", [1, 0, 0])
        with pytest.raises(IndexWriteError, match="bad:k0") as caught:
            index.index.write_chunks(g.index_name, [good, bad])
        # THEN the error names it and carries what did succeed, which is stored
        assert getattr(caught.value, "chunk_ids", None) == ["bad:k0"]
        assert getattr(caught.value, "report", None) == WriteReport(written=1)
        assert list(index.index.get_chunks(g.index_name, ["good:k0", "bad:k0"])) == ["good:k0"]


class TestReads:
    def test_iter_chunks_yields_every_chunk_with_the_fields_asked(self, index: IndexUnderTest) -> None:
        g = fresh(index)
        docs = [chunk_doc(f"d{i}", [1, i, 0, 0], tenant=None if i == 1 else "acme") for i in range(3)]
        index.index.write_chunks(g.index_name, docs)
        index.index.refresh(g.index_name)
        got = dict(index.index.iter_chunks(g.index_name, ["doc_id", "source_version", "no_such_field"]))
        # Fields the chunk does not have are left out, not None.
        assert got == {f"d{i}:k0": {"doc_id": f"d{i}", "source_version": 1} for i in range(3)}
        assert dict(index.index.iter_chunks(g.index_name, [])) == {f"d{i}:k0": {} for i in range(3)}
        tenants = dict(index.index.iter_chunks(g.index_name, ["tenant"]))
        assert tenants["d0:k0"] == {"tenant": "acme"}

    def test_reading_an_index_that_does_not_exist_is_an_error(self, index: IndexUnderTest) -> None:
        missing = index.name("missing")
        with pytest.raises(DynembedError, match=missing):
            index.index.get_chunks(missing, ["a:k0"])
        with pytest.raises(DynembedError, match=missing):
            list(index.index.iter_chunks(missing, ["doc_id"]))

    def test_writes_through_an_alias_reach_its_index(self, index: IndexUnderTest) -> None:
        g = fresh(index)
        alias = index.name("alias")
        index.index.swap_alias(alias, g.index_name, None)
        index.index.write_chunks(alias, [chunk_doc("a", [1, 0, 0, 0])])
        assert list(index.index.get_chunks(g.index_name, ["a:k0"])) == ["a:k0"]
        assert list(index.index.get_chunks(alias, ["a:k0"])) == ["a:k0"]


def _oracle(space: str, query: Sequence[float], stored: Sequence[float]) -> float:
    dot = sum(a * b for a, b in zip(query, stored, strict=True))
    if space == "cosinesimil":
        return (1 + dot / (math.dist(query, [0] * len(query)) * math.dist(stored, [0] * len(stored)))) / 2
    if space == "innerproduct":
        return 1 + dot if dot >= 0 else 1 / (1 - dot)
    return 1 / (1 + math.dist(query, stored) ** 2)


class TestKnn:
    def test_pre_filtered_top_k_without_vectors(self, index: IndexUnderTest) -> None:
        # GIVEN a restricted chunk nearest the query and public ones further away
        g = fresh(index)
        index.index.write_chunks(
            g.index_name,
            [
                chunk_doc("secret", [1, 0, 0, 0], acl=["hr"]),
                chunk_doc("near", [0.9, 0.1, 0, 0]),
                chunk_doc("mid", [0.5, 0.5, 0, 0]),
                chunk_doc("far", [0, 0, 1, 0]),
                chunk_doc("other-tenant", [1, 0.01, 0, 0], tenant="globex"),
            ],
        )
        index.index.refresh(g.index_name)
        # WHEN a public reader of acme searches for the top 2
        hits = index.index.knn_search(g.index_name, [1, 0, 0, 0], 2, access_filter("someone", "acme"))
        # THEN the filter applies before ranking: the best 2 of what the reader may see, no vectors
        assert [h.id for h in hits] == ["near:k0", "mid:k0"]
        assert hits[0].score > hits[1].score
        assert all("embedding" not in h.source and h.source["doc_id"] for h in hits)
        everyone = index.index.knn_search(g.index_name, [1, 0, 0, 0], 10, None)
        assert [h.id for h in everyone][:2] == ["secret:k0", "other-tenant:k0"]
        assert len(everyone) == 5

    @pytest.mark.parametrize("space", ["cosinesimil", "innerproduct", "l2"])
    def test_scores_are_opensearch_scores_for_the_space(self, index: IndexUnderTest, space: str) -> None:
        # Oracle: OpenSearch's documented score formulas per space type.
        g = fresh(index, dimension=3, space=space)
        vectors = {"a": [1.0, 0.0, 0.0], "b": [0.6, 0.8, 0.0], "c": [-0.5, 0.2, 0.1]}
        index.index.write_chunks(g.index_name, [chunk_doc(d, v) for d, v in vectors.items()])
        index.index.refresh(g.index_name)
        query = [0.9, 0.3, -0.2]
        hits = index.index.knn_search(g.index_name, query, 3, None)
        want = sorted(((_oracle(space, query, v), f"{d}:k0") for d, v in vectors.items()), reverse=True)
        assert [h.id for h in hits] == [cid for _, cid in want]
        for hit, (score, _) in zip(hits, want, strict=True):
            assert hit.score == pytest.approx(score, rel=1e-5)

    def test_an_empty_index_finds_nothing(self, index: IndexUnderTest) -> None:
        g = fresh(index)
        index.index.refresh(g.index_name)
        assert index.index.knn_search(g.index_name, [1, 0, 0, 0], 3, None) == []

    # One index across examples: each example writes its own index.
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        vectors=st.lists(
            st.lists(st.integers(-5, 5), min_size=3, max_size=3).filter(any),
            min_size=1,
            max_size=12,
            unique_by=tuple,
        ),
        k=st.integers(1, 12),
    )
    def test_knn_ranks_as_exact_cosine_does(
        self, index: IndexUnderTest, vectors: list[list[int]], k: int
    ) -> None:
        # Oracle: brute-force cosine over every stored vector (ties broken by id, as both do).
        g = fresh(index, dimension=3)
        docs = [chunk_doc(f"d{i:02}", [float(x) for x in v]) for i, v in enumerate(vectors)]
        index.index.write_chunks(g.index_name, docs)
        index.index.refresh(g.index_name)
        query = [1.0, 2.0, -1.0]
        hits = index.index.knn_search(g.index_name, query, k, None)
        want = sorted((-_oracle("cosinesimil", query, d.embedding), d.id) for d in docs)[:k]
        assert len(hits) == len(want)
        for hit, (score, _) in zip(hits, want, strict=True):
            assert hit.score == pytest.approx(-score, rel=1e-5, abs=1e-6)


class TestLifecycleAndAliases:
    def test_ensure_index_is_idempotent_and_keeps_the_data(self, index: IndexUnderTest) -> None:
        g = fresh(index)
        index.index.write_chunks(g.index_name, [chunk_doc("a", [1, 0, 0, 0])])
        index.index.ensure_index(g)
        assert list(index.index.get_chunks(g.index_name, ["a:k0"])) == ["a:k0"]

    def test_ensure_index_refuses_an_index_of_another_dimension(self, index: IndexUnderTest) -> None:
        g = fresh(index)
        with pytest.raises(ConfigError, match="dimension"):
            index.index.ensure_index(generation_for(g.index_name, dimension=8))

    def test_delete_index_is_idempotent_and_takes_its_aliases(self, index: IndexUnderTest) -> None:
        # GIVEN an index served by an alias
        g = fresh(index)
        alias = index.name("alias")
        index.index.swap_alias(alias, g.index_name, None)
        # WHEN it is deleted (twice)
        index.index.delete_index(g.index_name)
        index.index.delete_index(g.index_name)
        # THEN its data and its alias are gone
        assert index.index.alias_target(alias) is None
        with pytest.raises(DynembedError):
            index.index.get_chunks(g.index_name, ["a:k0"])

    def test_swap_alias_is_a_compare_and_swap_I6(self, index: IndexUnderTest) -> None:
        # GIVEN two indices and an alias on neither
        blue, green = fresh(index), fresh(index)
        alias = index.name("alias")
        assert index.index.alias_target(alias) is None
        # WHEN it is set, then swapped from blue to green
        index.index.swap_alias(alias, blue.index_name, None)
        assert index.index.alias_target(alias) == blue.index_name
        index.index.swap_alias(alias, green.index_name, blue.index_name)
        assert index.index.alias_target(alias) == green.index_name
        # THEN a swap that expects the wrong current target is refused and changes nothing
        with pytest.raises(VersionConflictError):
            index.index.swap_alias(alias, blue.index_name, None)
        with pytest.raises(VersionConflictError):
            index.index.swap_alias(alias, blue.index_name, "some-other-index")
        assert index.index.alias_target(alias) == green.index_name

    def test_a_retried_swap_that_already_happened_succeeds(self, index: IndexUnderTest) -> None:
        # GIVEN a promotion whose alias swap went through before the step was retried
        blue, green = fresh(index), fresh(index)
        alias = index.name("alias")
        index.index.swap_alias(alias, blue.index_name, None)
        index.index.swap_alias(alias, green.index_name, blue.index_name)
        # WHEN the same swap is asked again  THEN it is a no-op, not a conflict
        index.index.swap_alias(alias, green.index_name, blue.index_name)
        assert index.index.alias_target(alias) == green.index_name


def test_a_write_to_a_missing_index_creates_it_as_opensearch_does(index: IndexUnderTest) -> None:
    # OpenSearch auto-creates an index on its first write (action.auto_create_index), without
    # the generation's mapping. dynembed never writes before ensure_index; the fake does the same
    # so that a bug that does is not hidden by a KeyError only the fake would raise.
    name = index.name("auto")
    assert index.index.write_chunks(name, [chunk_doc("a", [1, 0, 0, 0])]) == WriteReport(written=1)
    assert list(index.index.get_chunks(name, ["a:k0"])) == ["a:k0"]
    other = index.name("auto")
    assert index.index.delete_chunks(other, [("a:k0", 1)]) == WriteReport(missing=1)
