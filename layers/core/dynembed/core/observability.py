"""Logger, Tracer and Metrics, built once (Powertools), and the metrics sink ``Telemetry``
publishes through in Lambda. Metric names live in config.METRICS."""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from dynembed.core.config import NAMES
from dynembed.core.ports import MetricUnitName

logger = Logger(service=NAMES.service)
tracer = Tracer(service=NAMES.service)
metrics = Metrics(namespace=NAMES.metrics_namespace, service=NAMES.service)


class PowertoolsMetricsSink:
    """EMF through Powertools. Plain metrics join the invocation's batch (flushed by the
    handler's ``@metrics.log_metrics``); a metric with dimensions of its own (tenant,
    generation, kind) is flushed at once as a single metric, with ``service`` kept beside them
    so alarms and dashboards find every metric under the same dimension."""

    def __init__(self, target: Metrics = metrics) -> None:
        self.target = target

    def emit(self, name: str, value: float, unit: MetricUnitName, dimensions: Mapping[str, str]) -> None:
        metric_unit = MetricUnit(unit)
        if not dimensions:
            self.target.add_metric(name=name, unit=metric_unit, value=value)
            return
        with single_metric(
            name=name,
            unit=metric_unit,
            value=value,
            namespace=NAMES.metrics_namespace,
            default_dimensions={"service": NAMES.service},
        ) as metric:
            for key, dimension_value in dimensions.items():
                metric.add_dimension(name=key, value=dimension_value)


__all__ = ["MetricUnit", "PowertoolsMetricsSink", "logger", "metrics", "tracer"]
