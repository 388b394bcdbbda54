"""Domain telemetry: counts and freshness, published as CloudWatch metrics (Powertools EMF)
and kept in memory so the local runtime, the demo and benchmarks can read the same figures."""

from __future__ import annotations

import math
import threading
from typing import Any

from dynembed.core.config import METRICS


class Telemetry:
    """Counters by (metric, dimension) and freshness samples. ``sink`` is a Powertools
    ``Metrics`` (or None in tests and local mode, where EMF lines would only be noise)."""

    def __init__(self, sink: Any | None = None) -> None:
        self.sink = sink
        self.counters: dict[str, float] = {}
        self.freshness_s: list[float] = []
        self.access_lag_s: list[float] = []
        self._lock = threading.Lock()

    def count(self, name: str, value: float = 1, dimension: tuple[str, str] | None = None) -> None:
        if value == 0:
            return
        key = name if dimension is None else f"{name}[{dimension[0]}={dimension[1]}]"
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + value
        if self.sink is not None:
            from aws_lambda_powertools.metrics import MetricUnit, single_metric

            if dimension is None:
                self.sink.add_metric(name=name, unit=MetricUnit.Count, value=value)
            else:
                with single_metric(
                    name=name,
                    unit=MetricUnit.Count,
                    value=value,
                    namespace=self.sink.namespace,
                    default_dimensions=self.sink.default_dimensions,
                ) as metric:
                    metric.add_dimension(name=dimension[0], value=dimension[1])

    def freshness(self, lag_seconds: float) -> None:
        """Source change → its chunks written (``FreshnessLagSeconds``)."""
        self._seconds(METRICS.freshness_lag, lag_seconds, self.freshness_s)

    def access_lag(self, lag_seconds: float) -> None:
        """Source change → its access patch applied in every write target (``AccessLagSeconds``)."""
        self._seconds(METRICS.access_lag, lag_seconds, self.access_lag_s)

    def _seconds(self, name: str, lag_seconds: float, samples: list[float]) -> None:
        lag = max(0.0, lag_seconds)
        with self._lock:
            samples.append(lag)
        if self.sink is not None:
            from aws_lambda_powertools.metrics import MetricUnit

            self.sink.add_metric(name=name, unit=MetricUnit.Seconds, value=lag)

    def get(self, name: str) -> float:
        return self.counters.get(name, 0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": dict(self.counters),
                "freshness_s": list(self.freshness_s),
                "access_lag_s": list(self.access_lag_s),
            }

    def reset(self) -> None:
        with self._lock:
            self.counters.clear()
            self.freshness_s.clear()
            self.access_lag_s.clear()


def percentile(samples: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]
