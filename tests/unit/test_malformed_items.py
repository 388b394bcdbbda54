"""A bad source item never stops an audit, a backfill or an evaluation: it is counted (the
``MalformedItems`` metric), reported (the audit report, the backfill's failed docs, the probe
details), and its chunks are not served. On fakes, through the real audit, backfill step and
evaluation probes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dynembed.audit.run import publish
from dynembed.core.models import Generation
from dynembed.core.source_scan import iter_source, live_documents
from dynembed.core.telemetry import Telemetry
from dynembed.quality.evaluation import GoldenSet
from dynembed.quality.measure import IndexSnapshot, run_probes
from dynembed.rebuild import steps
from dynembed.rebuild.generations import create, new_generation
from dynembed.rebuild.progress import BackfillProgress
from tests.fakes import RecordingMetricsSink
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit

TEXT = paragraphs("alpha", "bravo", "charlie", size=20)


def with_bad_items() -> Harness:
    """``good`` and ``bad`` indexed; then, behind classify's back (a stream that lags), ``bad``
    gets an ACL map and an item without a version (``nover``) appears."""
    h = Harness()
    h.write("good", body=TEXT)
    h.write("bad", body=TEXT, acl=["alice"])
    h.run()
    h.source.items["bad"]["acl"] = {"alice": True}
    h.source.items["nover"] = {"doc_id": "nover", "title": "N", "body": TEXT, "acl": ["public"]}
    return h


class Gauges(Telemetry):
    """Telemetry whose published points are kept by name (the last value of each)."""

    def __init__(self) -> None:
        self.points = RecordingMetricsSink()
        super().__init__(sink=self.points)

    @property
    def published(self) -> dict[str, float]:
        return {name: value for name, value, _unit, _dims in self.points.points}


# ---- audit ------------------------------------------------------------------------------------------
def test_audit_counts_and_reports_malformed_items_instead_of_failing() -> None:
    # GIVEN a source with an ACL map and an item without a version
    h = with_bad_items()
    # WHEN the audit runs (it used to fail outright on the unversioned item)
    report = h.services().audit()
    # THEN it completes, counts both, and its examples name the doc and the attribute
    assert report.complete
    assert report.malformed_items == 2
    assert report.totals()["malformed_items"] == 2
    examples = " | ".join(report.malformed_examples)
    assert "doc 'bad': access attribute 'acl'" in examples and "not a map (M)" in examples
    assert "doc 'nover': missing version attribute 'version'" in examples
    assert h.telemetry.get("MalformedItems") == 2
    # AND the chunks the malformed doc still has in the index are reported as not to be served
    assert report.totals()["orphaned_vectors"] == len(
        [c for c in h.indexed().values() if c["doc_id"] == "bad"]
    )
    # AND the gauge the alarm watches is published (0 included when none)
    gauges = Gauges()
    publish(report, gauges)
    assert gauges.published["MalformedItems"] == 2


def test_audit_repair_hides_malformed_docs_and_enqueues_no_job_for_them() -> None:
    h = with_bad_items()
    report = h.services().audit(queue=h.queue, repair=True)
    assert report.orphans_deleted > 0
    assert {c["doc_id"] for c in h.indexed().values()} == {"good"}
    assert {j.doc_id for j in h.queue.sent} <= {"good"}


def test_audit_reports_a_source_that_went_back() -> None:
    # GIVEN a doc indexed at v2 whose source then went back to v1 with the same ACL (the index
    # keeps v2's content: it cannot go back)
    h = Harness()
    h.write("d1", body=TEXT)
    h.write("d1", body=TEXT + "\n\nmore")
    h.run()
    h.put("d1", {"version": 1, "body": TEXT})
    h.run()
    # WHEN / THEN the audit says so (it used to report nothing)
    report = h.services().audit()
    assert report.totals()["regressed_documents"] == 1
    assert report.generations[0].examples["regressed"] == ["d1"]


# ---- backfill -----------------------------------------------------------------------------------------
def candidate(h: Harness) -> Generation:
    gen = new_generation(h.embedder.spec, h.chunker, "cand", generation_id="g2")
    create(h.registry, h.index, gen)
    h.services().progress.change("g2", lambda _p: BackfillProgress.fresh(1, 100))
    return h.registry.get("g2")


def test_backfill_page_records_malformed_items_and_indexes_the_rest() -> None:
    # GIVEN a page holding a good doc, an ACL map, an item without a version and one whose id
    # is a map
    h = with_bad_items()
    h.source.items["zz"] = {"doc_id": {"S": "zz"}, "version": Decimal(1), "body": TEXT}
    gen = candidate(h)
    items = list(iter_source(h.source))
    # WHEN the backfill reconciles the page into the candidate
    result = steps._reconcile_page(h.services(), gen, items)
    # THEN the page succeeds; the malformed items are failed docs with their reasons, and only
    # the good doc is in the candidate
    assert result.docs == 4
    assert set(result.failed) == {"bad", "nover", "<item without a usable id #3>"}
    assert "access attribute 'acl'" in result.failed["bad"]
    assert (
        "id attribute 'doc_id' must be a string (S), not a map (M)"
        in result.failed["<item without a usable id #3>"]
    )
    assert all("{'" not in reason for reason in result.failed.values())
    assert {c["doc_id"] for c in h.indexed(gen).values()} == {"good"}
    assert h.telemetry.get("MalformedItems") == 3


def test_backfill_page_of_malformed_items_only_does_not_fail_the_rebuild() -> None:
    h = Harness()
    h.source.items["a"] = {"doc_id": "a", "version": "abc", "body": TEXT}
    h.source.items["b"] = {"doc_id": "b", "version": Decimal(1), "body": TEXT, "tenant": {"x": "y"}}
    gen = candidate(h)
    result = steps._reconcile_page(h.services(), gen, list(iter_source(h.source)))
    assert set(result.failed) == {"a", "b"}


def test_targeted_backfill_skips_nothing_it_cannot_read_and_reports_it() -> None:
    # GIVEN a tenant's docs, one of them with a tenant given as a map
    h = Harness()
    h.write("a", body=TEXT, tenant="acme")
    h.write("b", body=TEXT, tenant="globex")
    h.run()
    h.source.items["c"] = {"doc_id": "c", "version": Decimal(1), "body": TEXT, "tenant": {"name": "acme"}}
    # WHEN a targeted backfill of tenant acme runs (it used to crash on the map)
    result = steps.targeted_backfill(h.services(), tenant="acme")
    # THEN acme's doc is enqueued, and the malformed one too (its reconcile hides it), counted
    assert {j.doc_id for j in h.queue.sent} == {"a", "c"}
    assert result["malformed_items"] == 1


# ---- evaluation probes -----------------------------------------------------------------------------------
def test_newest_edit_probe_skips_docs_nobody_may_read_and_says_so() -> None:
    # GIVEN the most recent edits: a doc with an empty ACL and a malformed one, then a readable one
    h = Harness()
    h.write("readable", body=paragraphs("delta", size=20), acl=["alice"])
    h.write("nobody", body=paragraphs("echo", size=20), acl=[])
    h.write("broken", body=paragraphs("fox", size=20), acl=["alice"])
    h.run()
    h.source.items["broken"]["acl"] = ["alice", ""]  # an empty principal: malformed
    scan = live_documents(h.schema, h.source)
    indexed = {c["doc_id"] for c in h.indexed().values()}
    golden = GoldenSet(queries={"q1": "delta0 delta1"}, qrels={"q1": {"readable": 1}})
    # WHEN the probes run on the generation (they used to search as an empty principal)
    probes, details = run_probes(h.services(), h.generation, golden, IndexSnapshot(scan.docs, indexed), k=10)
    # THEN the readable doc is probed and found; the others are skipped, and the detail says why
    assert probes["newest_edits_retrievable"]
    newest = details["newest_edits_retrievable"]
    assert (newest["probed"], newest["found"]) == (1, 1)
    assert newest["skipped_nobody_may_read"] == ["nobody"]
    assert "broken" not in scan.docs and "broken" in scan.malformed_ids


def test_newest_edit_probe_uses_the_ledgers_change_time_when_items_have_no_updated_at() -> None:
    # GIVEN docs written without updated_at (their change time comes from the stream record)
    h = Harness()
    h.put("d1", {"version": 1, "body": paragraphs("golf", size=20), "updated_at": None})
    h.run()
    scan = live_documents(h.schema, h.source)
    indexed = {c["doc_id"] for c in h.indexed().values()}
    golden = GoldenSet(queries={"q1": "golf0"}, qrels={"q1": {"d1": 1}})
    probes, details = run_probes(h.services(), h.generation, golden, IndexSnapshot(scan.docs, indexed), k=10)
    # THEN it is still probed (it used to be left out: nothing was probed, and the probe passed)
    assert details["newest_edits_retrievable"]["probed"] == 1
    assert probes["newest_edits_retrievable"]
