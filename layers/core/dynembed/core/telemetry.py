"""Domain telemetry: the one way dynembed emits metrics. Counts, gauges and freshness are kept in
memory (the local runtime, the demo and benchmarks read them) and, in Lambda, published through a
``MetricsSink`` (Powertools EMF, ``dynembed.core.observability``). Names come from
``config.METRICS``; any other name is refused, so the registry stays complete."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

from dynembed.core.config import METRICS
from dynembed.core.ports import MetricsSink, MetricUnitName

MAX_VALUES = 10_000
"""Values kept in memory per observed metric (the newest)."""
RECENT_DOCS = 256
RECENT_EVENTS_PER_DOC = 6
"""The ring of recent decisions: this many docs (least recently touched dropped first), this
many events each. Small on purpose: it is written to the local stack's telemetry file."""


class Telemetry:
    """Counters by (metric, dimensions), last gauge values (and when each was set: the local alarm
    evaluator treats an old one as missing data), freshness samples, observed values (latencies,
    rates) and a small ring of each doc's recent decisions. ``sink`` is None in tests and local
    mode, where EMF lines would only be noise."""

    def __init__(self, sink: MetricsSink | None = None) -> None:
        self.sink = sink
        self.counters: dict[str, float] = {}
        self.gauges: dict[str, float] = {}
        self.gauge_times: dict[str, float] = {}
        self.freshness_s: list[float] = []
        self.access_lag_s: list[float] = []
        self.values: dict[str, deque[float]] = {}
        self.recent: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, name: str, value: float = 1, dimension: tuple[str, str] | None = None) -> None:
        """Add ``value`` to a counter (zero adds nothing and emits nothing)."""
        _check(name)
        if value == 0:
            return
        dimensions = dict([dimension]) if dimension is not None else {}
        key = _key(name, dimensions)
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + value
        if self.sink is not None:
            self.sink.emit(name, value, "Count", dimensions)

    def gauge(
        self,
        name: str,
        value: float,
        unit: MetricUnitName = "Count",
        dimensions: Mapping[str, str] | None = None,
    ) -> None:
        """Record a level (zero included, so an alarm on it clears when the level drops)."""
        _check(name)
        dims = dict(dimensions or {})
        with self._lock:
            self.gauges[_key(name, dims)] = value
            self.gauge_times[_key(name, dims)] = time.time()
        if self.sink is not None:
            self.sink.emit(name, value, unit, dims)

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
            self.sink.emit(name, lag, "Seconds", {})

    def observe(self, name: str, value: float, unit: MetricUnitName = "None") -> None:
        """One value of a metric whose statistics matter (p95, Average)."""
        _check(name)
        with self._lock:
            self.values.setdefault(name, deque(maxlen=MAX_VALUES)).append(float(value))
        if self.sink is not None:
            self.sink.emit(name, float(value), unit, {})

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
        """A counter, or else a gauge, by key (``Name`` or ``Name[dim=value,...]``)."""
        with self._lock:
            return self.counters.get(name, self.gauges.get(name, 0))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": dict(self.counters),
                "gauges": dict(self.gauges),
                "gauge_times": dict(self.gauge_times),
                "freshness_s": list(self.freshness_s),
                "access_lag_s": list(self.access_lag_s),
                "values": {name: list(v) for name, v in self.values.items()},
                "recent": {doc: list(events) for doc, events in self.recent.items()},
            }

    def reset(self) -> None:
        with self._lock:
            self.counters.clear()
            self.gauges.clear()
            self.gauge_times.clear()
            self.freshness_s.clear()
            self.access_lag_s.clear()
            self.values.clear()
            self.recent.clear()


def _check(name: str) -> None:
    if not METRICS.known(name):
        raise ValueError(f"metric {name!r} is not in dynembed.core.config.METRICS: register it there")


def _key(name: str, dimensions: Mapping[str, str]) -> str:
    if not dimensions:
        return name
    return name + "[" + ",".join(f"{k}={v}" for k, v in sorted(dimensions.items())) + "]"


def percentile(samples: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]
