"""Telemetry publishes through Powertools Metrics (EMF) in Lambda and keeps the same figures in memory."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools import Metrics

from dynembed.core.telemetry import Telemetry, percentile

pytestmark = pytest.mark.unit


def test_counts_and_freshness_reach_emf_and_memory(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    sink = Metrics(namespace="dynembed-test", service="dynembed")
    telemetry = Telemetry(sink=sink)
    # WHEN counting plainly, by tenant, and recording freshness
    telemetry.count("EmbeddingsComputed", 3)
    telemetry.count("EmbeddedCharacters", 1200, ("tenant", "acme"))
    telemetry.freshness(2.5)
    sink.flush_metrics()
    # THEN the figures are in memory and in EMF lines, the tenant one with its dimension
    assert telemetry.get("EmbeddingsComputed") == 3
    assert telemetry.get("EmbeddedCharacters[tenant=acme]") == 1200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_metric = {m["Name"]: line for line in lines for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert by_metric["EmbeddedCharacters"]["tenant"] == "acme"
    assert (
        by_metric["EmbeddingsComputed"]["EmbeddingsComputed"] == [3.0]
        or by_metric["EmbeddingsComputed"]["EmbeddingsComputed"] == 3.0
    )
    assert by_metric["FreshnessLagSeconds"]["FreshnessLagSeconds"] in (2.5, [2.5])


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([float(n) for n in range(1, 101)], 95) == 95.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_observed_values_reach_emf_with_their_unit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    sink = Metrics(namespace="dynembed-test", service="dynembed")
    telemetry = Telemetry(sink=sink)
    telemetry.observe("SearchLatency", 12.5, "Milliseconds")
    telemetry.observe("SearchLatency", 20.0, "Milliseconds")
    sink.flush_metrics()
    assert list(telemetry.values["SearchLatency"]) == [12.5, 20.0]
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    (metric,) = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    assert (metric["Name"], metric["Unit"]) == ("SearchLatency", "Milliseconds")
    assert line["SearchLatency"] == [12.5, 20.0]


def test_recent_decisions_are_a_bounded_ring_per_doc() -> None:
    from dynembed.core.telemetry import RECENT_DOCS, RECENT_EVENTS_PER_DOC

    telemetry = Telemetry()
    for n in range(RECENT_EVENTS_PER_DOC + 2):
        telemetry.note("doc", f"event {n}", version=n, lag_s=-1.0 if n == 0 else 0.5, at=float(n))
    events = telemetry.recent_for("doc")
    assert [e["event"] for e in events] == [f"event {n}" for n in range(2, RECENT_EVENTS_PER_DOC + 2)]
    assert events[-1]["lag_s"] == 0.5
    for n in range(RECENT_DOCS + 5):
        telemetry.note(f"other-{n}", "decision content")
    assert len(telemetry.snapshot()["recent"]) == RECENT_DOCS
    assert telemetry.recent_for("doc") == []  # the least recently touched doc went first
