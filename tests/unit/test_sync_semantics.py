"""Incremental sync on in-memory fakes: the real classify, applier and reconciler.
Each test names the invariant of DESIGN.md it checks."""

from __future__ import annotations

import pytest

from dynembed.core.errors import TransientError
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit

NINE = paragraphs("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")


def test_new_doc_is_chunked_embedded_and_indexed() -> None:
    # GIVEN a fresh pipeline
    h = Harness()
    # WHEN a doc is written and synced
    h.write("d1", body=NINE)
    h.run()
    # THEN the index holds exactly the chunks the oracle expects, each embedded once
    assert h.differences() == {"orphaned": [], "missing": [], "stale": [], "duplicates": []}
    assert h.embedder.document_texts == len(h.expected())


def test_edit_embeds_only_the_changed_chunk_I4() -> None:
    # GIVEN an indexed doc
    h = Harness()
    h.write("d1", body=NINE)
    h.run()
    before = h.embedder.document_texts
    # WHEN one paragraph changes
    h.write("d1", body=NINE.replace("echo0 echo1", "echo0 EDITED echo1"))
    h.run()
    # THEN one chunk is embedded, the old one is gone, the rest untouched
    assert h.embedder.document_texts - before == 1
    assert h.differences()["orphaned"] == [] and h.differences()["missing"] == []


def test_doc_that_shrinks_from_nine_chunks_to_six_leaves_no_orphans_I2() -> None:
    h = Harness()
    h.write("d1", body=NINE)
    h.run()
    assert len(h.indexed()) == 9
    h.write("d1", body=paragraphs("alpha", "bravo", "charlie", "delta", "echo", "foxtrot"))
    h.run()
    assert len(h.indexed()) == 6
    assert h.differences() == {"orphaned": [], "missing": [], "stale": [], "duplicates": []}


def test_each_job_delivered_several_times_converges_I2() -> None:
    h = Harness()
    h.write("d1", body=NINE)
    jobs = h.classify()
    # WHEN the same job arrives 4 times, in one batch and again later
    h.sync(jobs * 3)
    h.sync(jobs)
    assert h.differences() == {"orphaned": [], "missing": [], "stale": [], "duplicates": []}
    assert h.embedder.document_texts == 9  # embedded once despite duplicates (I4)


def test_versions_out_of_order_end_at_the_newest_I2() -> None:
    h = Harness()
    h.write("d1", body=NINE)
    jobs_v1 = h.classify()
    h.write("d1", body=paragraphs("new", "text"))
    jobs_v2 = h.classify()
    # WHEN the newer job runs first, then the older one
    h.sync(jobs_v2)
    h.sync(jobs_v1)
    # THEN the index holds version 2 (reconcile reads the source; the ledger refuses going back)
    assert h.differences() == {"orphaned": [], "missing": [], "stale": [], "duplicates": []}
    assert {c["source_version"] for c in h.indexed().values()} == {2}


def test_crash_after_k_of_n_writes_then_redelivery_converges_I2() -> None:
    h = Harness()
    h.write("d1", body=NINE)
    jobs = h.classify()
    # WHEN the index dies after 4 of 9 chunk writes
    h.index.crash_after = 4
    outcomes = h.sync(jobs)
    assert isinstance(outcomes[0].error, TransientError)
    # THEN the pending keys are in the ledger, so nothing written is unaccounted for
    entry = h.ledger.get("d1", "g1")
    assert entry is not None and len(entry.pending_keys) == 9
    # AND redelivery completes without embedding the written chunks' texts twice (cache)
    h.sync(jobs)
    assert h.differences() == {"orphaned": [], "missing": [], "stale": [], "duplicates": []}
    assert h.embedder.document_texts == 9
    assert h.ledger.get("d1", "g1").pending_keys == []  # type: ignore[union-attr]


def test_crash_during_a_shrink_then_redelivery_removes_old_chunks() -> None:
    h = Harness()
    h.write("d1", body=NINE)
    h.run()
    h.write("d1", body=paragraphs("alpha", "zulu", "yankee"))
    jobs = h.classify()
    h.index.crash_after = 1
    h.sync(jobs)
    h.sync(jobs)
    assert h.differences() == {"orphaned": [], "missing": [], "stale": [], "duplicates": []}


def test_delete_then_late_older_update_stays_deleted_I3() -> None:
    h = Harness()
    h.write("d1", body=NINE)
    old_jobs = h.classify()  # a content job for v1, delivered late
    h.remove("d1")
    h.classify()  # the delete is applied at once
    h.sync(old_jobs)  # the late job reads the source: the doc is gone
    assert h.indexed() == {}


def test_delete_after_indexing_removes_every_chunk_immediately_I3() -> None:
    h = Harness()
    h.write("d1", body=NINE)
    h.run()
    h.remove("d1")
    jobs = h.classify()
    assert jobs == []  # no job needed: the classify side deleted the chunks
    assert h.indexed() == {}


def test_archive_is_a_delete_and_unarchive_reindexes() -> None:
    h = Harness()
    h.write("d1", body=NINE)
    h.run()
    h.write("d1", status="archived")
    h.run()
    assert h.indexed() == {}
    h.write("d1", status="live")
    h.run()
    assert h.differences() == {"orphaned": [], "missing": [], "stale": [], "duplicates": []}


def test_access_revocation_applies_before_queued_content_work_I3_I5() -> None:
    h = Harness()
    h.write("d1", body=NINE, acl=["public"])
    h.run()
    h.write("d1", body=NINE + "\n\nmore text here", acl=["staff"])  # content + access change
    before = h.embedder.document_texts
    jobs = h.classify()
    # THEN once classify returns, every chunk carries the new ACL, with no embedding yet
    assert {tuple(c["acl"]) for c in h.indexed().values()} == {("staff",)}
    assert h.embedder.document_texts == before
    assert len(jobs) == 1
    h.sync(jobs)
    assert h.differences() == {"orphaned": [], "missing": [], "stale": [], "duplicates": []}


def test_late_patch_of_an_older_version_cannot_restore_revoked_access_I3() -> None:
    h = Harness()
    h.write("d1", body=NINE, acl=["public"])
    h.run()
    h.write("d1", acl=["public", "staff"])
    stale_record = h.records[-1]
    h.write("d1", acl=["staff"])  # revoke public
    h.classify()
    # WHEN the older access record is delivered again (a retry)
    h.classify([stale_record])
    # THEN the chunks still carry the newest ACL (patches read the current source)
    assert {tuple(c["acl"]) for c in h.indexed().values()} == {("staff",)}


def test_metadata_change_patches_without_embedding_I5() -> None:
    h = Harness()
    h.write("d1", body=NINE, category="a")
    h.run()
    before = h.embedder.document_texts
    h.write("d1", category="b")
    jobs = h.classify()
    assert jobs == []
    assert {c["metadata"]["category"] for c in h.indexed().values()} == {"b"}
    assert h.embedder.document_texts == before


def test_access_change_without_version_bump_fails_closed() -> None:
    # GIVEN an app that changes the ACL but forgets to bump the version
    h = Harness()
    h.write("d1", body=NINE, acl=["public"])
    h.run()
    item = h.source.items["d1"]
    old = dict(item)
    item["acl"] = ["staff"]
    h._record("MODIFY", old, dict(item))
    h.classify()
    # THEN no chunk stays readable by the revoked principal
    assert all("public" not in c["acl"] for c in h.indexed().values())
    assert h.telemetry.get("AccessFailClosed") > 0


def test_one_bad_job_does_not_fail_the_others_I7() -> None:
    h = Harness()
    h.write("good", body=NINE)
    h.write("bad", body=NINE)
    jobs = h.classify()
    h.source.items["bad"]["version"] = "not-a-number"
    outcomes = h.sync(jobs)
    by_doc = {o.job.doc_id: o for o in outcomes}
    assert by_doc["good"].ok
    assert not by_doc["bad"].ok and "bad" in str(by_doc["bad"].error)


def test_batch_texts_reach_the_embedder_together() -> None:
    h = Harness()
    for n in range(5):
        h.write(f"d{n}", body=paragraphs(f"w{n}a", f"w{n}b"))
    h.run()
    assert h.embedder.document_calls == 1


def test_chunk_shared_by_two_docs_is_embedded_once_I4() -> None:
    h = Harness()
    h.write("d1", body=paragraphs("same", "one"), title="T")
    h.write("d2", body=paragraphs("same", "two"), title="T")
    h.run()
    assert h.embedder.document_texts == len({c["content_hash"] for c in h.indexed().values()})


def test_recreated_doc_whose_version_restarts_gets_a_clear_error_I7() -> None:
    # GIVEN a doc deleted at version 2
    h = Harness()
    h.write("d1", body=NINE)
    h.write("d1", body=NINE + "\n\nmore")
    h.run()
    h.remove("d1")
    h.run()
    # WHEN the app re-creates it starting again at version 1
    h.source.items["d1"] = {"doc_id": "d1", "version": 1, "body": NINE, "acl": ["public"]}
    h._record("INSERT", None, dict(h.source.items["d1"]))
    outcomes = h.sync(h.classify())
    # THEN the job fails with a reason naming the doc and the rule (it will reach the DLQ)
    assert not outcomes[0].ok
    assert "d1" in str(outcomes[0].error) and "versions must keep rising" in str(outcomes[0].error)


def test_embedding_cost_is_charged_to_each_docs_tenant() -> None:
    # GIVEN two tenants' docs reconciled in one batch (one embedding call)
    h = Harness()
    h.write("a1", body=paragraphs("alpha"), tenant="acme")
    h.write("b1", body=paragraphs("bravo", "charlie"), tenant="globex")
    h.run()
    # THEN each tenant is charged exactly the characters of its own chunks
    chars = {
        t: sum(len(c["text"]) + len("a1\n\n") for c in h.indexed().values() if c["tenant"] == t)
        for t in ("acme", "globex")
    }
    assert h.telemetry.get("EmbeddedCharacters[tenant=acme]") == chars["acme"]
    assert h.telemetry.get("EmbeddedCharacters[tenant=globex]") == chars["globex"]
    assert h.embedder.document_calls == 1
