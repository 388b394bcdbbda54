"""Logger, Tracer and Metrics, built once (Powertools). Metric names live in config.METRICS."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from dynembed.core.config import NAMES

logger = Logger(service=NAMES.service)
tracer = Tracer(service=NAMES.service)
metrics = Metrics(namespace=NAMES.metrics_namespace, service=NAMES.service)

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]
