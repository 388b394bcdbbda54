"""The end-to-end sentinel on in-memory fakes: the real classify, applier and reconciler carry
its write and its delete; a fake clock stands in for the waits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from dynembed.core.config import METRICS, NAMES, THRESHOLDS, TUNING
from dynembed.core.errors import AccessDeniedError, ConfigError, TransientError
from dynembed.core.models import SENTINEL_DOC_ID, SENTINEL_PRINCIPAL, SENTINEL_TENANT
from dynembed.core.schema import SourceSchema
from dynembed.quality.sentinel import SentinelResult, run_sentinel, search_as_sentinel, sentinel_item
from dynembed_ops.ops import monitor_alarms, monitor_values
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit


@dataclass
class FakeTime:
    """Monotonic and wall clock in one; each sleep advances it and lets ``tick`` act (the pumps)."""

    now: float = 1_800_000_000.0
    tick: Callable[[], None] = lambda: None
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.tick()


def _harness() -> Harness:
    """Searches go through the alias, as the sentinel's do: the one the settings name."""
    return Harness(alias=NAMES.index_alias)


def _run(h: Harness, time: FakeTime, **kw: object) -> SentinelResult:
    svc = h.services()
    return run_sentinel(
        h.schema,
        h,
        search_as_sentinel(svc),
        h.telemetry,
        clock=time.clock,
        wall=time.clock,
        sleep=time.sleep,
        poll_s=0.5,
        **kw,  # type: ignore[arg-type]
    )


def _published(h: Harness) -> dict[str, float]:
    return {k: v for k, v in h.telemetry.gauges.items() if k in (METRICS.e2e_freshness, METRICS.e2e_delete)}


def _alarms(h: Harness) -> dict[str, dict[str, object]]:
    return {a["alarm"]: a for a in monitor_alarms(monitor_values(h.telemetry.snapshot(), None))}


def test_a_flowing_pipeline_makes_the_write_searchable_and_the_delete_gone() -> None:
    # GIVEN a pipeline whose pumps run between two polls
    h = _harness()
    time = FakeTime()
    time.tick = h.run
    # WHEN the sentinel runs
    result = _run(h, time)
    # THEN both times are measured, one poll each, and published under the service dimension
    assert result.ok and not result.notes
    assert result.freshness_s == pytest.approx(0.5) and result.delete_s == pytest.approx(0.5)
    assert _published(h) == {METRICS.e2e_freshness: 0.5, METRICS.e2e_delete: 0.5}
    assert _alarms(h)["EndToEndFreshness"]["firing"] is False
    # AND the item is gone from the source and from the index
    assert SENTINEL_DOC_ID not in h.source.items
    assert not [c for c in h.indexed() if c.startswith(SENTINEL_DOC_ID)]


def test_a_stalled_pipeline_times_out_and_both_alarms_fire() -> None:
    # GIVEN a pipeline that never moves (stream or queue stopped)
    h = _harness()
    time = FakeTime()
    # WHEN the sentinel runs with the stack's wait
    result = _run(h, time, wait_s=TUNING.sentinel_wait_s)
    # THEN the write timed out after the wait, which is logged but not published (no value)
    assert result.freshness_timed_out and not result.ok
    assert result.freshness_s == pytest.approx(TUNING.sentinel_wait_s)
    assert "not searchable through the alias within 120 s" in result.notes[0]
    # AND the delete was not measured (the item was never there to disappear)
    assert result.delete_s is None
    assert _published(h) == {}
    # AND the alarm evaluator reports both end-to-end alarms firing (missing data breaches)
    firing = _alarms(h)
    assert firing["EndToEndFreshness"]["firing"] and firing["EndToEndDelete"]["firing"]
    assert firing["EndToEndFreshness"]["missing"] and firing["EndToEndDelete"]["missing"]
    # AND the item is not left behind in the source
    assert SENTINEL_DOC_ID not in h.source.items


def test_a_delete_that_never_reaches_the_index_times_out() -> None:
    # GIVEN a pipeline that syncs writes but drops every REMOVE on the floor
    h = _harness()
    time = FakeTime()

    def writes_only() -> None:
        h.records = [r for r in h.records if r["eventName"] != "REMOVE"]
        h.run()

    time.tick = writes_only
    result = _run(h, time, wait_s=10)
    assert not result.freshness_timed_out and result.delete_timed_out
    assert result.delete_s == pytest.approx(10)
    assert "delete was not applied to the index within 10 s" in result.notes[0]
    # THEN the freshness is published, the delete's value is missing: its alarm fires
    assert set(_published(h)) == {METRICS.e2e_freshness}
    assert _alarms(h)["EndToEndDelete"]["firing"]


def test_a_failing_search_is_a_not_yet_and_is_noted_once() -> None:
    h = _harness()
    time = FakeTime()

    def broken(_text: str) -> list[tuple[str, int]]:
        raise TransientError("OpenSearch: 503")

    result = run_sentinel(
        h.schema,
        h,
        broken,
        h.telemetry,
        wait_s=3,
        poll_s=1,
        clock=time.clock,
        wall=time.clock,
        sleep=time.sleep,
    )
    assert result.freshness_timed_out
    assert result.notes.count("search failed while waiting: OpenSearch: 503") == 1


def test_users_never_see_the_sentinel_and_cannot_search_as_it() -> None:
    # GIVEN the sentinel's item synced (as in the middle of a run)
    h = _harness()
    h.write("d1", body=paragraphs("alpha"))
    h.put_item(sentinel_item(h.schema, 1, "end-to-end check abc", 1.0))
    h.run()
    svc = h.services()
    # THEN users' searches never return it, whatever they search for
    for principal in ("public", ["reader", "staff"]):
        hits = svc.search("dynembed sentinel end-to-end check abc", principal, k=50).results
        assert hits and all(r.doc_id != SENTINEL_DOC_ID for r in hits)
    # AND its principal and tenant are refused to every caller but the sentinel
    with pytest.raises(AccessDeniedError, match="reserved"):
        svc.search("anything", [SENTINEL_PRINCIPAL], k=5)
    with pytest.raises(AccessDeniedError, match="reserved"):
        svc.search("anything", "reader", k=5, tenant=SENTINEL_TENANT)
    assert [d for d, _ in search_as_sentinel(svc)("end-to-end check abc")] == [SENTINEL_DOC_ID]


def test_the_audit_and_the_cost_figures_leave_the_sentinel_out() -> None:
    # GIVEN the sentinel's item synced, then deleted from the source but not yet from the index
    h = _harness()
    h.write("d1", body=paragraphs("alpha"))
    h.put_item(sentinel_item(h.schema, 1, "end-to-end check abc", 1.0))
    h.run()
    h.source.items.pop(SENTINEL_DOC_ID)
    # WHEN audited
    report = h.services().audit()
    # THEN it is neither a source doc nor an orphan, and no tenant was charged for it
    assert report.generations[0].source_docs == 1 and report.totals()["orphaned_vectors"] == 0
    assert not [k for k in h.telemetry.counters if SENTINEL_TENANT in k]
    assert any(k.startswith(METRICS.embedded_characters) for k in h.telemetry.counters)


def test_the_item_holds_the_reserved_principal_and_tenant_in_the_operators_schema() -> None:
    schema = SourceSchema(
        id_attribute="pk",
        version_attribute="rev",
        content_attributes=("text",),
        access_attributes=("groups",),
    )
    item = sentinel_item(schema, 7, "end-to-end check abc", 1.5)
    assert item["pk"] == SENTINEL_DOC_ID and item["rev"] == 7
    assert item["groups"] == [SENTINEL_PRINCIPAL] and item["tenant"] == SENTINEL_TENANT
    assert item["text"] == "dynembed sentinel: end-to-end check abc"
    assert schema.acl_of(item) == [SENTINEL_PRINCIPAL]


def test_a_schema_without_access_attribute_is_refused() -> None:
    with pytest.raises(ConfigError, match="no access attribute"):
        sentinel_item(SourceSchema(access_attributes=()), 1, "x", 1.0)


def test_a_value_older_than_the_alarm_window_is_missing_data() -> None:
    # GIVEN a sentinel run that went well, and no run since for longer than the alarm looks back
    h = _harness()
    time = FakeTime()
    time.tick = h.run
    _run(h, time)
    snapshot = h.telemetry.snapshot()
    window = TUNING.sentinel_alarm_period_s * TUNING.sentinel_alarm_periods
    later = max(snapshot["gauge_times"].values()) + window + 1
    # THEN both end-to-end alarms fire (a sentinel that stopped running is a failure)
    alarms = {a["alarm"]: a for a in monitor_alarms(monitor_values(snapshot, None, now=later))}
    assert alarms["EndToEndFreshness"]["missing"] and alarms["EndToEndDelete"]["firing"]


def test_each_run_writes_a_higher_version_than_the_last() -> None:
    h = _harness()
    time = FakeTime()
    time.tick = h.run
    first = _run(h, time)
    time.now += 300
    second = _run(h, time)
    assert second.version > first.version and second.ok


def test_the_stack_waits_longer_than_its_thresholds_and_runs_never_overlap() -> None:
    assert TUNING.sentinel_wait_s > max(THRESHOLDS.sentinel_freshness_s, THRESHOLDS.sentinel_delete_s)
    assert TUNING.sentinel_timeout_s < 60 * TUNING.sentinel_rate_minutes
