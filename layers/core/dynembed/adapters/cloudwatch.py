"""CloudWatch ``PutMetricData`` for the figures that need dimensions of their own (the canary's,
by generation) or that must be readable back locally (moto stores them): the monitors publish
through this; request-path functions keep publishing EMF through Powertools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from dynembed.core.config import NAMES
from dynembed.core.errors import TransientError
from dynembed.core.ports import MetricDatum

BATCH = 500
"""PutMetricData takes up to 1,000 values per request."""


class CloudWatchMetrics:
    def __init__(self, client: Any | None = None, region: str | None = None) -> None:
        self.client = client or boto3.client("cloudwatch", region_name=region)

    def publish(self, data: Sequence[MetricDatum]) -> None:
        records = [
            {
                "MetricName": datum.name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in datum.dimensions.items()],
                "Value": float(datum.value),
                "Unit": datum.unit,
            }
            for datum in data
        ]
        for start in range(0, len(records), BATCH):
            try:
                self.client.put_metric_data(
                    Namespace=NAMES.metrics_namespace, MetricData=records[start : start + BATCH]
                )
            except (BotoCoreError, ClientError) as exc:
                raise TransientError(f"CloudWatch refused {len(records)} metric values: {exc}") from exc
