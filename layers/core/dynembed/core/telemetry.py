"""Domain telemetry: counts and freshness, published as CloudWatch metrics (Powertools EMF)
and kept in memory so the local runtime, the demo and benchmarks can read the same figures."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from dynembed.core.config import METRICS

MAX_VALUES = 10_000
"""Values kept in memory per observed metric (the newest)."""
RECENT_DOCS = 256
RECENT_EVENTS_PER_DOC = 6
"""The ring of recent decisions: this many docs (least recently touched dropped first), this
many events each. Small on purpose: it is written to the local stack's telemetry file."""


class Telemetry:
    """Counters by (metric, dimension), freshness samples, observed values (latencies, rates) and
    a small ring of each doc's recent decisions. ``sink`` is a Powertools ``Metrics`` (or None in
    tests and local mode, where EMF lines would only be noise)."""

    def __init__(self, sink: Any | None = None) -> None:
        self.sink = sink
        self.counters: dict[str, float] = {}
        self.freshness_s: list[float] = []
        self.values: dict[str, deque[float]] = {}
        self.recent: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
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
        lag = max(0.0, lag_seconds)
        with self._lock:
            self.freshness_s.append(lag)
        if self.sink is not None:
            from aws_lambda_powertools.metrics import MetricUnit

            self.sink.add_metric(name=METRICS.freshness_lag, unit=MetricUnit.Seconds, value=lag)

    def observe(self, name: str, value: float, unit: str = "None") -> None:
        """One value of a metric whose statistics matter (p95, Average); ``unit`` is a CloudWatch
        unit name (None, Count, Milliseconds, Seconds)."""
        with self._lock:
            self.values.setdefault(name, deque(maxlen=MAX_VALUES)).append(float(value))
        if self.sink is not None:
            from aws_lambda_powertools.metrics import MetricUnit

            self.sink.add_metric(name=name, unit=MetricUnit(unit), value=float(value))

    def note(
        self,
        doc_id: str,
        event: str,
        *,
        version: int | None = None,
        lag_s: float | None = None,
        generation: str | None = None,
        detail: str = "",
        at: float | None = None,
    ) -> None:
        """Remember what just happened to a doc (a decision, an index write) for `explain`."""
        record = {
            "event": event,
            "at": time.time() if at is None else at,
            "version": version,
            "lag_s": None if lag_s is None else round(max(0.0, lag_s), 3),
            "generation": generation,
            "detail": detail,
        }
        with self._lock:
            ring = self.recent.pop(doc_id, None) or deque(maxlen=RECENT_EVENTS_PER_DOC)
            ring.append(record)
            self.recent[doc_id] = ring
            while len(self.recent) > RECENT_DOCS:
                self.recent.popitem(last=False)

    def recent_for(self, doc_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.recent.get(doc_id, ()))

    def get(self, name: str) -> float:
        return self.counters.get(name, 0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": dict(self.counters),
                "freshness_s": list(self.freshness_s),
                "values": {name: list(v) for name, v in self.values.items()},
                "recent": {doc: list(events) for doc, events in self.recent.items()},
            }

    def reset(self) -> None:
        with self._lock:
            self.counters.clear()
            self.freshness_s.clear()
            self.values.clear()
            self.recent.clear()


def percentile(samples: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]
