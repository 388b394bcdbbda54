"""A schema that isolates tenants (``tenant_isolation: true``): an item without a tenant is
malformed (it could never be searched, since every search names a tenant), and dynembed's own
measurements (the gate's golden set, its probes, calibration) still run: they used to search
without a tenant and were refused, so every rebuild failed."""

from __future__ import annotations

import pytest

from dynembed.core.errors import AccessDeniedError, MalformedRecordError
from dynembed.core.source_scan import live_documents
from dynembed.embedders.memo import QueryMemos
from dynembed.quality.evaluation import GoldenSet
from dynembed.quality.measure import IndexSnapshot, measure, run_probes
from dynembed.rebuild.calibrate import golden_top_hits
from dynembed.sync.classify import classify_change
from tests.harness import SCHEMA, Harness, paragraphs

pytestmark = pytest.mark.unit

ISOLATED = SCHEMA.model_copy(update={"tenant_isolation": True})


@pytest.mark.parametrize("tenant", ["missing", None, ""])
def test_an_item_without_a_tenant_is_malformed_when_tenants_are_isolated(tenant: object) -> None:
    item: dict[str, object] = {"doc_id": "d1", "version": 1, "body": "text", "acl": ["alice"]}
    if tenant != "missing":
        item["tenant"] = tenant
    problems = ISOLATED.problems(item)
    assert len(problems) == 1
    assert "tenant attribute 'tenant'" in problems[0]
    assert ISOLATED.state_of(item, "d1").kind == "malformed"
    with pytest.raises(MalformedRecordError, match=r"doc 'd1'.*tenant attribute 'tenant'"):
        classify_change(None, item, ISOLATED)
    # without isolation the tenant stays optional (an empty string is still refused)
    if tenant != "":
        assert SCHEMA.problems(item) == []


def test_an_item_with_a_tenant_is_well_formed_when_tenants_are_isolated() -> None:
    item = {"doc_id": "d1", "version": 1, "body": "text", "acl": ["alice"], "tenant": "acme"}
    assert ISOLATED.problems(item) == []
    assert ISOLATED.tenant_of(item) == "acme"


def test_a_write_without_a_tenant_is_hidden_not_served_to_nobody() -> None:
    # GIVEN an isolated schema and a doc of tenant acme
    h = Harness(schema=ISOLATED)
    h.write("d1", body=paragraphs("alpha", size=10), acl=["alice"], tenant="acme")
    h.run()
    assert "d1" in {c["doc_id"] for c in h.indexed().values()}
    # WHEN the source app drops the tenant
    h.write("d1", body=paragraphs("alpha", size=10), acl=["alice"], tenant=None)
    h.run()
    # THEN the doc is hidden (malformed), and the dead letter names the doc and the attribute
    assert "d1" not in {c["doc_id"] for c in h.indexed().values()}
    assert h.dead_letters is not None
    reasons = [str(body.get("reason")) for body in h.dead_letters.sent]
    assert any("doc 'd1'" in r and "tenant attribute 'tenant'" in r for r in reasons), reasons


def _isolated_corpus() -> tuple[Harness, GoldenSet]:
    h = Harness(schema=ISOLATED)
    h.write("a1", body=paragraphs("alpha", size=20), acl=["public"], tenant="acme")
    h.write("g1", body=paragraphs("gamma", size=20), acl=["public"], tenant="globex")
    h.write("b1", body=paragraphs("bravo", size=20), acl=["alice"], tenant="acme")
    h.run()
    golden = GoldenSet(
        queries={"q1": "alpha0 alpha1", "q2": "gamma0 gamma1"}, qrels={"q1": {"a1": 1}, "q2": {"g1": 1}}
    )
    return h, golden


def test_the_golden_set_is_measured_across_tenants_when_tenants_are_isolated() -> None:
    h, golden = _isolated_corpus()
    svc = h.services()
    # a caller's search without a tenant is still refused ...
    with pytest.raises(AccessDeniedError, match="tenant isolation"):
        svc.search("alpha0", ["public"])
    # ... but the gate's own measurement runs (it used to fail every rebuild), over both tenants
    result = measure(svc, h.generation, golden, ["public"], k=10)
    assert result.result.ndcg == pytest.approx(1.0)


def test_probes_and_calibration_run_when_tenants_are_isolated() -> None:
    h, golden = _isolated_corpus()
    svc = h.services()
    scan = live_documents(h.schema, h.source)
    indexed = {c["doc_id"] for c in h.indexed().values()}
    probes, details = run_probes(svc, h.generation, golden, IndexSnapshot(scan.docs, indexed), k=10)
    assert probes["newest_edits_retrievable"], details
    assert details["newest_edits_retrievable"]["probed"] == 3
    tops = golden_top_hits(svc, h.generation, golden, ["public"], k=10, queries=QueryMemos(svc.embedder_for))
    assert {doc for doc, _ in tops.values()} == {"a1", "g1"}
