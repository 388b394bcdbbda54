"""`explain DOC_ID` on fakes: one doc made stale in each way the article names, and the verdict
the explanation gives for it; plus the audit function's ``{"explain": ...}`` event."""

from __future__ import annotations

from typing import Any

import pytest

from dynembed.audit.explain import VERDICTS, Explanation
from dynembed.core.config import Settings
from dynembed.core.models import chunk_id
from dynembed.wiring import Services
from dynembed_ops.local.lambda_runtime import LocalLambdaContext, load_handler
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit


def _synced(**attrs: Any) -> Harness:
    # GIVEN one doc of three paragraphs, synced into the serving generation
    h = Harness()
    h.write("doc", title="Doc", body=paragraphs("alpha", "beta", "gamma"), acl=["eng"], category="a", **attrs)
    h.run()
    return h


def _services(h: Harness) -> Services:
    svc = h.services()
    svc.settings = Settings(index_alias=h.alias)
    return svc


def _explain(h: Harness, doc_id: str = "doc") -> Explanation:
    result: Explanation = _services(h).explain(doc_id, recent=h.telemetry.recent_for)
    return result


def _only(explanation: Explanation) -> str:
    (verdict,) = explanation.verdicts().values()
    return verdict


def _stored(h: Harness) -> dict[str, dict[str, Any]]:
    chunks: dict[str, dict[str, Any]] = h.index.indices[h.generation.index_name]
    return chunks


def test_a_synced_doc_is_current_and_serves_production() -> None:
    h = _synced()
    explanation = _explain(h)
    (view,) = explanation.generations
    assert (
        view.verdict == "current" and view.serving and view.versus_production == ["serves production search"]
    )
    assert len(view.chunks) == view.expected_chunks > 1
    assert view.ledger is not None and view.ledger["source_version"] == explanation.source["version"]
    # AND its recent decisions are there, with their lag
    events = [e["event"] for e in explanation.recent or []]
    assert events == ["decision content", "indexed"]
    assert all(e["lag_s"] is not None and e["lag_s"] >= 0 for e in explanation.recent or [])


def test_edited_text_not_yet_reconciled_is_stale_content() -> None:
    h = _synced()
    h.write("doc", body=paragraphs("alpha", "delta", "gamma"))  # the stream record is not delivered
    explanation = _explain(h)
    assert _only(explanation) == "stale content"
    assert "reconciled the doc up to version 1" in explanation.generations[0].reasons[0]


def test_changed_access_not_yet_patched_is_stale_metadata_or_access() -> None:
    h = _synced()
    h.write("doc", acl=["eng", "sales"])
    explanation = _explain(h)
    assert _only(explanation) == "stale metadata or access"
    assert any(r.startswith("acl ['eng']") for r in explanation.generations[0].reasons)


def test_changed_metadata_not_yet_patched_is_stale_metadata_or_access() -> None:
    h = _synced()
    h.write("doc", category="b")
    assert _only(_explain(h)) == "stale metadata or access"


def test_chunks_of_another_chunker_version_are_old_chunker() -> None:
    h = _synced()
    first = next(iter(_stored(h)))
    _stored(h)[first]["chunker_version"] = "structural-0ld0ld00"
    assert _only(_explain(h)) == "old chunker"


def test_a_current_version_cut_differently_is_old_chunker() -> None:
    # GIVEN the ledger at the current version, but the index holds a chunk the chunker no longer
    # makes in place of one it does (an older implementation of the same chunker version)
    h = _synced()
    stored = _stored(h)
    cid = next(iter(stored))
    stored[cid] = {**stored[cid], "content_hash": "cut-by-older-code"}
    assert _only(_explain(h)) == "old chunker"


def test_chunks_embedded_by_another_model_are_old_model() -> None:
    h = _synced()
    for chunk in _stored(h).values():
        chunk["model_id"] = "static/tokenlearn@1:64"
    explanation = _explain(h)
    assert _only(explanation) == "old model"
    assert "static/tokenlearn@1:64" in explanation.generations[0].reasons[0]


def test_a_new_doc_not_yet_indexed_is_missing() -> None:
    h = _synced()
    h.write("new", title="New", body="brand new text")
    assert _only(_explain(h, "new")) == "missing"


def test_a_doc_gone_from_the_source_with_chunks_left_is_orphaned() -> None:
    h = _synced()
    h.source.items.pop("doc")  # vanished without a stream record
    explanation = _explain(h)
    assert _only(explanation) == "orphaned"
    assert explanation.source == {"exists": False, "live": False}


def test_leftover_chunks_beside_the_current_ones_are_orphaned() -> None:
    h = _synced()
    stored = _stored(h)
    cid, chunk = next(iter(stored.items()))
    stored[chunk_id("doc", "leftover")] = {**chunk, "chunk_key": "leftover", "content_hash": "old-text"}
    assert cid in stored
    assert _only(_explain(h)) == "orphaned"


def test_a_deleted_doc_that_is_gone_everywhere_is_current() -> None:
    h = _synced()
    h.remove("doc")
    h.run()
    (view,) = _explain(h).generations
    assert (view.verdict, view.reasons) == ("current", ["absent, as in the source"])


def test_every_generation_with_an_index_gets_its_own_verdict() -> None:
    # GIVEN a second write target that never received the doc
    from dynembed.rebuild.generations import create, new_generation

    h = _synced()
    g2 = new_generation(
        h.embedder.spec, h.chunker.model_copy(update={"target_chars": 300}), "chunks", generation_id="g2"
    )
    create(h.registry, h.index, g2)
    h.registry.update("g2", write_target=True)
    explanation = _explain(h)
    assert explanation.verdicts() == {"g1": "current", "g2": "missing"}
    g2_view = next(g for g in explanation.generations if g.generation == "g2")
    assert not g2_view.serving and g2_view.versus_production[0].startswith("chunker ")
    assert set(explanation.verdicts().values()) <= set(VERDICTS)


def test_the_audit_function_explains_a_doc() -> None:
    h = _synced()
    h.write("doc", acl=["sales"])
    result = load_handler("audit")({"explain": "doc"}, LocalLambdaContext("dynembed-audit"), svc=_services(h))
    assert result["doc_id"] == "doc"
    assert [g["verdict"] for g in result["generations"]] == ["stale metadata or access"]
    assert result["recent"] == "not recorded"
