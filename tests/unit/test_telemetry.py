"""Telemetry is the one way metrics leave dynembed: registered names only, kept in memory, and
published through the MetricsSink port (Powertools EMF in Lambda)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from dynembed.core.config import METRICS
from dynembed.core.observability import PowertoolsMetricsSink
from dynembed.core.telemetry import Telemetry, percentile
from tests.fakes import RecordingMetricsSink

pytestmark = pytest.mark.unit


def _emf(out: str) -> dict[str, dict[str, Any]]:
    """EMF lines by metric name."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {m["Name"]: line for line in lines for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def test_counts_gauges_and_freshness_reach_emf_and_memory(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    metrics = Metrics(namespace="dynembed", service="dynembed")
    telemetry = Telemetry(sink=PowertoolsMetricsSink(metrics))
    # WHEN counting plainly and by tenant, recording freshness, and a gauge by generation
    telemetry.count(METRICS.embeddings_computed, 3)
    telemetry.count(METRICS.embedded_characters, 1200, ("tenant", "acme"))
    telemetry.freshness(2.5)
    telemetry.gauge(METRICS.eval_ndcg, 0.75, "None", {"generation": "g2"})
    metrics.flush_metrics()
    # THEN the figures are in memory
    assert telemetry.get(METRICS.embeddings_computed) == 3
    assert telemetry.get("EmbeddedCharacters[tenant=acme]") == 1200
    assert telemetry.get("EvalNdcgAt10[generation=g2]") == 0.75
    # AND in EMF lines, where a metric with dimensions of its own keeps `service` beside them
    by_metric = _emf(capsys.readouterr().out)
    assert by_metric["EmbeddingsComputed"]["EmbeddingsComputed"] in (3.0, [3.0])
    assert by_metric["FreshnessLagSeconds"]["FreshnessLagSeconds"] in (2.5, [2.5])
    tenant = by_metric["EmbeddedCharacters"]
    assert (tenant["tenant"], tenant["service"]) == ("acme", "dynembed")
    assert tenant["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "tenant"]]
    ndcg = by_metric["EvalNdcgAt10"]
    assert (ndcg["generation"], ndcg["service"], ndcg["EvalNdcgAt10"]) == ("g2", "dynembed", [0.75])
    assert ndcg["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "None"


def test_gauges_publish_zero_and_keep_the_last_value_counts_skip_zero() -> None:
    sink = RecordingMetricsSink()
    telemetry = Telemetry(sink=sink)
    # WHEN a drift gauge is set twice, the second time to zero, and a counter gets zero
    telemetry.gauge(METRICS.orphaned_vectors, 4)
    telemetry.gauge(METRICS.orphaned_vectors, 0)
    telemetry.count(METRICS.chunks_written, 0)
    # THEN both gauge points went out (an alarm clears on the zero), the counter's did not
    assert sink.points == [("OrphanedVectors", 4, "Count", {}), ("OrphanedVectors", 0, "Count", {})]
    assert telemetry.get(METRICS.orphaned_vectors) == 0
    assert telemetry.snapshot()["gauges"] == {"OrphanedVectors": 0}


def test_a_name_outside_the_registry_is_refused() -> None:
    telemetry = Telemetry(sink=RecordingMetricsSink())
    with pytest.raises(ValueError, match=r"'JobsHeldd' is not in dynembed\.core\.config\.METRICS"):
        telemetry.count("JobsHeldd")
    with pytest.raises(ValueError, match="register it there"):
        telemetry.gauge("Orphans", 1)
    # An evaluation metric at another k keeps its registered name with At<k>.
    telemetry.gauge("EvalNdcgAt5", 0.5, "None", {"generation": "g1"})
    assert telemetry.get("EvalNdcgAt5[generation=g1]") == 0.5


def test_registered_names_are_unique() -> None:
    values = list(METRICS.model_dump().values())
    assert len(values) == len(set(values)) == len(METRICS.names())


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
    telemetry = Telemetry(sink=PowertoolsMetricsSink(sink))
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
