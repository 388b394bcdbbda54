"""Reconcile writes a batch's chunks in one bulk request per index (docs/design.md, flow 1:
pending keys first, then the index, then each doc's commit), and a failure still fails only
the jobs it touched: an item refused by the index fails its own doc, a request that fails
fails the docs in it, and a redelivery converges (invariants I2 and I4)."""

from __future__ import annotations

import pytest

from dynembed.core.errors import TransientError
from dynembed.core.models import chunk_id
from dynembed.index.errors import BulkWriteError
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit

CLEAN = {"orphaned": [], "missing": [], "stale": [], "duplicates": []}


def _docs(h: Harness, n: int) -> list[str]:
    ids = [f"d{i}" for i in range(n)]
    for i, doc_id in enumerate(ids):
        h.write(doc_id, body=paragraphs(f"w{i}a", f"w{i}b", f"w{i}c"))
    return ids


def test_a_batch_of_docs_is_written_in_one_request() -> None:
    # GIVEN five new docs of a few chunks each, classified into one batch of jobs
    h = Harness()
    _docs(h, 5)
    jobs = h.classify()
    assert len(jobs) == 5
    # WHEN the batch is reconciled
    h.index.write_calls = 0
    outcomes = h.sync(jobs)
    # THEN every job succeeded with one write request for all their chunks, and each doc
    # is committed in the ledger
    assert all(o.ok for o in outcomes)
    assert h.index.write_calls == 1
    assert len(h.indexed()) == len(h.expected()) >= 10
    assert h.differences() == CLEAN
    assert {h.ledger.get(f"d{i}", h.generation.id).state for i in range(5)} == {"committed"}


def test_an_item_the_index_refuses_fails_only_its_own_doc() -> None:
    # GIVEN three docs, and an index that refuses every chunk of d1
    h = Harness()
    _docs(h, 3)
    jobs = h.classify()
    h.index.refuse_docs = {"d1"}
    # WHEN the batch is reconciled
    outcomes = {o.job.doc_id: o for o in h.sync(jobs)}
    # THEN d1's job fails with an error naming only its chunks; d0 and d2 are committed
    assert outcomes["d0"].ok and outcomes["d2"].ok
    error = outcomes["d1"].error
    assert isinstance(error, BulkWriteError)
    assert error.chunk_ids and all(c.startswith(chunk_id("d1", "")) for c in error.chunk_ids)
    assert h.ledger.get("d0", h.generation.id).state == "committed"
    assert h.ledger.get("d2", h.generation.id).state == "committed"
    d1 = h.ledger.get("d1", h.generation.id)
    assert d1 is not None and d1.source_version < 1 and d1.pending_keys  # begun, never committed
    assert {c["doc_id"] for c in h.indexed().values()} == {"d0", "d2"}
    # AND once the index takes it again, the redelivered job converges
    h.index.refuse_docs = set()
    assert all(o.ok for o in h.sync([outcomes["d1"].job]))
    assert h.differences() == CLEAN


def test_a_failed_request_fails_every_doc_in_it_and_a_redelivery_converges() -> None:
    # GIVEN an indexed doc that is edited, and two new docs, in one batch
    h = Harness()
    h.write("d0", body=paragraphs("old", "kept", "text"))
    h.run()
    h.write("d0", body=paragraphs("new", "kept", "text"))
    h.write("d1", body=paragraphs("one", "two", "three"))
    h.write("d2", body=paragraphs("four", "five", "six"))
    jobs = h.classify()
    # WHEN the index's write request fails as a whole (a timeout, a 5xx)
    h.index.fail_next_writes = [TransientError("index unavailable (injected)")]
    outcomes = h.sync(jobs)
    # THEN every job in the request fails, nothing is committed at the new versions, and the
    # old version of d0 is still what is served
    assert not any(o.ok for o in outcomes)
    assert all(isinstance(o.error, TransientError) for o in outcomes)
    assert {c["doc_id"] for c in h.indexed().values()} == {"d0"}
    assert h.ledger.get("d0", h.generation.id).source_version == 1
    # AND the redelivered batch converges, each new chunk embedded once more at most
    assert all(o.ok for o in h.sync(jobs))
    assert h.differences() == CLEAN


def test_a_crash_mid_request_leaves_pending_keys_that_a_redelivery_resolves() -> None:
    # GIVEN three docs; the write request dies after four of their chunks
    h = Harness()
    _docs(h, 3)
    jobs = h.classify()
    h.index.crash_after = 4
    outcomes = h.sync(jobs)
    assert not any(o.ok for o in outcomes)
    # THEN every doc is begun (its pending keys name what may be in the index) ...
    for doc_id in ("d0", "d1", "d2"):
        entry = h.ledger.get(doc_id, h.generation.id)
        assert entry is not None and entry.source_version < 1 and entry.pending_keys
    # ... and the redelivery converges with no orphan and no duplicate
    assert all(o.ok for o in h.sync(jobs))
    assert h.differences() == CLEAN
