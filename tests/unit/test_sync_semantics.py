"""Incremental sync on in-memory fakes: the real classify, applier and reconciler.
Each test names the invariant of DESIGN.md it checks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dynembed.core.errors import MalformedRecordError, TransientError
from dynembed.core.models import ReconcileJob
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


# ---- access and deletes fail closed, whatever the version order or the state of the images --------
CLEAN = {"orphaned": [], "missing": [], "stale": [], "duplicates": []}


def test_version_going_back_with_a_narrower_acl_revokes_at_once_I3() -> None:
    # GIVEN v5 readable by alice and bob, indexed
    h = Harness()
    for _ in range(4):
        h.write("d1", body=NINE)
    h.write("d1", body=NINE, acl=["alice", "bob"])
    h.run()
    assert "d1" in h.readable_by("bob")
    # WHEN the app goes back to v4 readable by alice only
    h.put("d1", {"version": 4, "acl": ["alice"]})
    h.classify()
    # THEN bob can no longer read it once classify returns (the index cannot take v4's ACL at
    # a lower external version, so the doc is hidden: fail closed), and no chunk is unaccounted
    assert "d1" not in h.readable_by("bob")
    assert h.telemetry.get("AccessFailClosed") > 0
    # AND the next write above v5 that changes what the index reads brings it back
    h.write("d1", acl=["alice", "carol"])
    h.run()
    assert h.differences() == CLEAN
    assert h.readable_by("carol") == {"d1"} and h.readable_by("bob") == set()


def test_doc_hidden_by_a_version_going_back_is_reported_and_repaired_by_the_audit() -> None:
    # GIVEN v2 readable by alice and bob, then v1 by alice only (hidden), then v3 that changes
    # nothing the index reads (a skip: nothing re-indexes the doc by itself)
    h = Harness()
    h.write("d1", body=NINE, acl=["alice"])
    h.write("d1", acl=["alice", "bob"])
    h.run()
    h.put("d1", {"version": 1, "acl": ["alice"]})
    h.run()
    h.put("d1", {"version": 3, "views": 7})
    h.run()
    assert h.indexed() == {}
    # WHEN the audit runs
    report = h.services().audit(queue=h.queue, repair=True)
    # THEN it reports the doc missing, and its repair brings it back with the current ACL
    assert report.totals()["missing_documents"] == 1
    h.run()
    assert h.differences() == CLEAN and h.readable_by("bob") == set()


def test_malformed_write_between_two_good_ones_never_leaves_access_behind_I3() -> None:
    # GIVEN v2 readable by alice and bob, indexed
    h = Harness()
    h.write("d1", body=NINE, acl=["alice"])
    h.write("d1", acl=["alice", "bob"])
    h.run()
    # WHEN the app writes version "abc" for alice only, then v3 for alice only
    h.put("d1", {"version": "abc", "acl": ["alice"]})
    h.classify()
    # THEN the malformed record is dead-lettered with its reason, the doc hidden (its current
    # item is unreadable), and counted
    assert "d1" not in h.readable_by("bob") and "d1" not in h.readable_by("alice")
    assert [d["doc_id"] for d in h.dead_letters.sent] == ["d1"]
    assert "version attribute 'version'" in h.dead_letters.sent[0]["reason"]
    assert h.telemetry.get("MalformedItems") == 1
    # WHEN the fix arrives (its old image is the malformed one)
    h.write("d1", acl=["alice"])
    h.run()
    # THEN it is applied, never rejected: the doc is back for alice alone
    assert h.differences() == CLEAN
    assert (h.readable_by("alice"), h.readable_by("bob")) == ({"d1"}, set())


def test_malformed_record_whose_fix_is_already_in_the_table_applies_the_current_acl() -> None:
    # GIVEN v2 [alice, bob] indexed; then "abc" [alice] and v3 [alice] both written before
    # classify sees the malformed record
    h = Harness()
    h.write("d1", body=NINE, acl=["alice", "bob"])
    h.run()
    h.put("d1", {"version": "abc", "acl": ["alice"]})
    bad = h.records.pop()
    h.write("d1", acl=["alice"])
    # WHEN only the malformed record is delivered
    h.classify([bad])
    # THEN the current (well-formed) item's ACL is applied: bob is out, alice keeps the doc
    assert "d1" not in h.readable_by("bob")
    assert "d1" in h.readable_by("alice")


def test_write_without_a_version_then_delete_item_removes_the_doc_I3() -> None:
    # GIVEN an indexed doc, then a write without a version, then delete-item
    h = Harness()
    h.write("d1", body=NINE)
    h.run()
    h.put("d1", {"version": None, "body": NINE + "\n\nedited"})
    h.remove("d1")
    # WHEN both records are classified
    jobs = h.classify()
    # THEN the doc is gone from the index at once: the REMOVE deletes by the record's key even
    # though its old image has no version
    assert h.indexed() == {}
    assert jobs == []
    assert len(h.dead_letters.sent) == 1  # the unversioned write, with its reason


@pytest.mark.parametrize(
    ("acl", "named"),
    [
        pytest.param({"alice": True}, "not a map (M)", id="map"),
        pytest.param(Decimal(5), "not a number (N)", id="number"),
        pytest.param({Decimal(1), Decimal(2)}, "not a number set (NS)", id="number set"),
    ],
)
def test_acl_of_a_wrong_type_is_never_read_as_principals(acl: object, named: str) -> None:
    # GIVEN an indexed doc whose ACL is then written with a wrong type
    h = Harness()
    h.write("d1", body=NINE, acl=["alice"])
    h.run()
    h.write("d1", acl=acl)
    h.classify()
    # THEN its chunks are hidden at once (nobody reads it, least of all a map key as principal)
    assert h.indexed() == {}
    # AND reprocessing it (a forced reconcile) reports a malformed item naming doc and attribute,
    # never a TypeError, and writes nothing
    [outcome] = h.sync([ReconcileJob(doc_id="d1", min_source_version=0, reason="reprocess", force=True)])
    assert isinstance(outcome.error, MalformedRecordError)
    assert "'d1'" in str(outcome.error) and "access attribute 'acl'" in str(outcome.error)
    assert named in str(outcome.error)
    assert h.indexed() == {}


def test_tenant_as_a_map_hides_the_doc_instead_of_storing_a_repr() -> None:
    h = Harness()
    h.write("d1", body=NINE, tenant="acme")
    h.run()
    h.write("d1", tenant={"name": "acme"})
    h.classify()
    assert h.indexed() == {}
    assert "tenant attribute 'tenant' must be a string (S), not a map (M)" in h.dead_letters.sent[0]["reason"]


def test_version_of_1e30_is_refused_by_classify_not_five_times_by_sync() -> None:
    # GIVEN an indexed doc, then a write with version 1e30
    h = Harness()
    h.write("d1", body=NINE)
    h.run()
    h.put("d1", {"version": Decimal("1E+30"), "body": NINE + "\n\nmore"})
    # WHEN classified
    jobs = h.classify()
    # THEN no job reaches sync; the record is dead-lettered and the doc hidden
    assert jobs == []
    assert "above 2305843009213693951" in h.dead_letters.sent[0]["reason"]
    assert h.indexed() == {}


def test_reconcile_hides_a_doc_whose_current_item_turned_malformed() -> None:
    # GIVEN an indexed doc whose item is overwritten with a malformed one behind classify's back
    h = Harness()
    h.write("d1", body=NINE)
    h.run()
    h.source.items["d1"]["body"] = Decimal(3)
    # WHEN a reconcile job for it runs
    [outcome] = h.sync([ReconcileJob(doc_id="d1", min_source_version=1)])
    # THEN its chunks are deleted in every write target and the job fails with the reason (DLQ)
    assert h.indexed() == {}
    assert isinstance(outcome.error, MalformedRecordError)
    assert "content attribute 'body' must be a string (S), not a number (N)" in str(outcome.error)
    assert h.telemetry.get("MalformedItems") == 1


def test_stale_delete_of_a_recreated_doc_applies_the_recreated_acl_I3() -> None:
    # GIVEN a doc readable by alice and bob, deleted, then re-created for alice only, before
    # classify sees either record
    h = Harness()
    h.write("d1", body=NINE, acl=["alice", "bob"])
    h.run()
    h.remove("d1")
    h.write("d1", body=NINE, acl=["alice"])
    # WHEN both records are classified (the delete is older than the current item)
    h.classify()
    # THEN the delete is skipped, but the current ACL is applied at once: bob is out
    assert "d1" not in h.readable_by("bob")


def test_freshness_is_measured_for_items_without_updated_at() -> None:
    # GIVEN a source app that does not stamp its writes
    h = Harness()
    h.put("d1", {"version": 1, "body": NINE, "updated_at": None})
    # WHEN it is synced
    h.run()
    # THEN freshness is timed from the stream record instead
    assert len(h.telemetry.freshness_s) == 1


def test_access_lag_is_measured_when_an_access_patch_is_applied() -> None:
    h = Harness()
    h.write("d1", body=NINE, acl=["alice", "bob"])
    h.run()
    h.put("d1", {"version": 2, "acl": ["alice"], "updated_at": None})
    h.classify()
    assert len(h.telemetry.access_lag_s) == 1
    assert 0 <= h.telemetry.access_lag_s[0] < 60


def test_text_a_source_went_back_to_is_indexed_by_the_next_access_change() -> None:
    # GIVEN v2 indexed, then the source goes back to v1's text (same ACL: nothing to hide)
    h = Harness()
    h.write("d1", body=NINE)
    h.write("d1", body=paragraphs("newer", "text"))
    h.run()
    h.put("d1", {"version": 1, "body": NINE})
    h.run()
    # WHEN the next write (v3) changes only the ACL: v1 → v3 shows no content change
    h.write("d1", acl=["public", "staff"])
    h.run()
    # THEN the patch notices the index holds other text than the current item and reconciles
    assert h.differences() == CLEAN


def test_delete_removes_chunks_a_patch_moved_above_the_ledger_I3() -> None:
    # GIVEN v1 indexed, then v2 changes body and ACL: the patch moves the chunks to v2 at once,
    # while the ledger stays at v1 until the content job runs
    h = Harness()
    h.write("d1", body=NINE, acl=["alice", "bob"])
    h.run()
    h.write("d1", body=NINE + "\n\nmore", acl=["alice"])
    h.classify()  # the content job is not run
    # WHEN the app writes without a version and then deletes the item
    h.put("d1", {"version": None})
    h.remove("d1")
    h.classify()
    # THEN nothing of the doc is left, although the delete's version is unknown and the
    # ledger's (v1) is below the chunks' (v2)
    assert h.indexed() == {}
