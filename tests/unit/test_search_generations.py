"""Only generations that receive changes can be searched: the active one, the standby, a candidate
being backfilled. A failed, rejected or retired index is frozen at some past state (it may still
hold docs revoked or deleted since), so searching it is refused with the status named."""

from __future__ import annotations

from typing import Any

import pytest

from dynembed.core.errors import GenerationNotSearchableError
from dynembed.core.models import ChunkerSpec, Generation, GenerationStatus
from dynembed.query.search import ensure_searchable
from dynembed.rebuild import generations
from dynembed_ops.local.lambda_runtime import LocalLambdaContext, load_handler
from tests.harness import Harness

pytestmark = pytest.mark.unit

SECRET = "quarterly salaries of the finance team"


def _candidate(h: Harness, gen_id: str, *, write_target: bool = True) -> Generation:
    gen = generations.new_generation(
        h.embedder.spec, ChunkerSpec(target_chars=300), h.index_prefix, generation_id=gen_id
    )
    generations.create(h.registry, h.index, gen)
    return h.registry.update(gen_id, write_target=write_target)


def _found(h: Harness, generation: str | None) -> list[str]:
    response = h.services().search(SECRET, "staff", k=5, generation=generation)
    return [r.doc_id for r in response.results]


@pytest.fixture
def h() -> Harness:
    # GIVEN a doc readable by staff, indexed in the active generation g1 and a candidate g2
    h = Harness()
    _candidate(h, "g2")
    h.write("payroll", body=SECRET, acl=["staff"])
    h.run()
    return h


def test_active_standby_and_a_candidate_being_built_can_be_searched(h: Harness) -> None:
    # WHEN the candidate is searched while it is built, then promoted (g1 becomes standby)
    assert _found(h, "g2") == ["payroll"]
    generations.promote(h.registry, h.index, h.alias, "g2")
    # THEN the active and the standby both answer
    assert h.registry.get("g1").status is GenerationStatus.STANDBY
    assert _found(h, "g1") == _found(h, "g2") == ["payroll"]


@pytest.mark.parametrize(
    ("end", "status", "words"),
    [
        (
            lambda h: generations.reject(h.registry, "g2", "nDCG fell"),
            "failed",
            "was rejected (status failed)",
        ),
        (
            lambda h: h.registry.update("g2", status=GenerationStatus.FAILED, write_target=False),
            "failed",
            "failed (status failed)",
        ),
        (lambda h: generations.retire(h.registry, h.index, "g2"), "retired", "is retired"),
    ],
)
def test_a_generation_that_no_longer_receives_changes_is_refused(
    h: Harness, end: Any, status: str, words: str
) -> None:
    # GIVEN the candidate leaves the write targets, then the doc's access is revoked
    end(h)
    h.write("payroll", acl=["finance"])
    h.run()
    # WHEN someone searches the frozen generation by name
    with pytest.raises(GenerationNotSearchableError) as raised:
        _found(h, "g2")
    # THEN it is refused, naming the generation, its status and where to inspect it instead
    message = str(raised.value)
    assert raised.value.generation_id == "g2" and raised.value.status == status
    assert f"generation g2 {words}" in message
    assert "dynembed generations --show g2" in message
    # and the generations that receive changes already reflect the revocation
    assert _found(h, "g1") == []


def test_a_rejected_index_would_have_leaked_the_revoked_doc(h: Harness) -> None:
    # GIVEN a rejected candidate whose index still holds the doc, then access is revoked
    generations.reject(h.registry, "g2", "recall fell")
    h.write("payroll", acl=["finance"])
    h.run()
    # THEN its index still says staff may read it: exactly what the refusal protects against
    stale = [c for c in h.index.indices[h.registry.get("g2").index_name].values() if c["doc_id"] == "payroll"]
    assert stale and all(c["acl"] == ["staff"] for c in stale)


def test_a_candidate_not_yet_a_write_target_is_refused() -> None:
    h = Harness()
    _candidate(h, "g3", write_target=False)
    with pytest.raises(GenerationNotSearchableError, match="g3 is building and not yet a write target"):
        ensure_searchable(h.registry.get("g3"))


def test_the_search_lambda_returns_the_error(h: Harness) -> None:
    # GIVEN the search handler wired on the fakes; WHEN a rejected generation is asked for
    handler = load_handler("search")
    generations.reject(h.registry, "g2", "nDCG fell")
    event = {"text": SECRET, "principal": "staff", "generation": "g2"}
    # THEN the invocation fails with the domain error (Lambda reports its type and message)
    with pytest.raises(GenerationNotSearchableError, match="g2 was rejected"):
        handler(event, LocalLambdaContext("dynembed-search"), svc=h.services())
    ok = handler({**event, "generation": "g1"}, LocalLambdaContext("dynembed-search"), svc=h.services())
    assert [r["doc_id"] for r in ok["results"]] == ["payroll"]
