"""A crash mid-write, then the source goes back below the crashed write's version: the chunks
that write left are above every version the reconcile of the older item can delete at. They
used to be dropped from the ledger anyway (its deletes were refused, the commit cleared them),
so they stayed in the index unaccounted for, and a later revocation, which patches the chunks
the ledger knows, left them readable by the revoked principals. Found by the state machine
(tests/unit/test_sync_stateful.py, seed 3145292933401979970476491481116499137)."""

from __future__ import annotations

import pytest

from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit


def _crash_then_go_back() -> Harness:
    h = Harness()
    h.write("c", body=paragraphs("red", size=12), acl=["public"])
    h.write("c", body=paragraphs("red", "red", "red", "red", "green", "gold", size=12))  # v2
    jobs = h.classify()
    h.index.crash_after = 2  # the v2 reconcile writes two of its chunks, then dies
    assert not h.sync([jobs[0]])[0].ok
    h.index.crash_after = None
    h.put("c", {"version": 1, "acl": ["public"], "body": paragraphs("red", size=12)})  # went back
    h.records.clear()
    assert h.sync([jobs[0]])[0].ok  # the job again: it reads the v1 item
    return h


def test_chunks_a_lower_version_cannot_delete_stay_in_the_ledger() -> None:
    h = _crash_then_go_back()
    entry = h.ledger.get("c", "g1")
    assert entry is not None
    accounted = set(entry.chunk_keys) | set(entry.pending_keys)
    indexed = {c["chunk_key"] for c in h.indexed().values() if c["doc_id"] == "c"}
    assert indexed <= accounted, indexed - accounted


def test_a_revocation_after_the_source_went_back_reaches_every_chunk_I3() -> None:
    h = _crash_then_go_back()
    h.write("c", acl=["staff"])  # v3: public revoked
    h.classify()
    assert h.access_violations() == []
    assert "c" not in h.readable_by("bob")
    h.run()
    assert h.access_violations() == []


def test_a_committed_chunk_patched_above_the_version_the_source_went_back_to_stays_accounted() -> None:
    # GIVEN a doc whose committed chunk was patched at v3 (the ledger still at v1), and a v1
    # reconcile of the item after the source went back to v1 with another text
    h = Harness()
    h.write("c", body=paragraphs("red", size=12), acl=["public"])
    h.run()
    h.write("c", category="x")  # v2: a metadata patch
    h.write("c", body=paragraphs("red", "red", size=12))  # v3: the patch half of it lands now
    stale_jobs = h.classify()
    h.put("c", {"version": 1, "acl": ["public"], "body": paragraphs("blue", size=12)})
    h.records.clear()
    h.queue.sent.clear()
    from dynembed.core.models import ReconcileJob

    assert h.sync([ReconcileJob(doc_id="c", min_source_version=1)])[0].ok
    # THEN the chunk its delete could not take is still in the ledger, and a revocation reaches it
    entry = h.ledger.get("c", "g1")
    assert entry is not None
    indexed = {c["chunk_key"] for c in h.indexed().values() if c["doc_id"] == "c"}
    assert indexed <= set(entry.chunk_keys) | set(entry.pending_keys)
    h.write("c", acl=["staff"])
    h.classify()
    assert h.access_violations() == [], stale_jobs
