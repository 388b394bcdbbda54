"""`dynembed status` evaluates the live-signal alarms locally on the stack's thresholds, and,
like CloudWatch's, the rate alarms judge only with enough samples."""

from __future__ import annotations

import pytest

from dynembed.core.config import THRESHOLDS
from dynembed.quality.signals import SignalSummary
from dynembed_ops.ops import QueueDepth, alarms

pytestmark = pytest.mark.unit


def _firing(summary: SignalSummary) -> dict[str, bool]:
    rows = alarms([], QueueDepth(0, 0), QueueDepth(0, 0), None, signals=summary)
    return {row["alarm"]: row["firing"] for row in rows}


def test_weak_and_zero_result_rates_fire_above_their_thresholds_with_enough_samples() -> None:
    many = int(THRESHOLDS.live_min_samples)
    summary = SignalSummary(
        generation="g",
        samples=many,
        weak_samples=many,
        weak_retrieval_rate=THRESHOLDS.weak_retrieval_rate + 0.1,
        zero_result_rate=THRESHOLDS.zero_result_rate - 0.1,
        latency_ms={"p50": 10.0, "p95": THRESHOLDS.search_latency_p95_ms + 1},
    )
    firing = _firing(summary)
    assert firing["WeakRetrievalRate"] and not firing["ZeroResultRate"]
    assert firing["SearchLatencyP95"] and not firing["SearchLatencyP50"]


def test_a_handful_of_samples_never_fires_a_rate_alarm() -> None:
    summary = SignalSummary(
        generation="g", samples=3, weak_samples=3, weak_retrieval_rate=1.0, zero_result_rate=1.0
    )
    firing = _firing(summary)
    assert not firing["WeakRetrievalRate"] and not firing["ZeroResultRate"]
