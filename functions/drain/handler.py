"""drain: scheduled; sends held (batched-policy) jobs that are due to the jobs queue."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from dynembed.core.observability import logger, metrics, tracer
from dynembed.sync.drain import drain_held_jobs
from dynembed.wiring import Services, services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, svc: Services | None = None) -> dict[str, Any]:
    svc = svc or services()
    return asdict(drain_held_jobs(svc.held, svc.queue, svc.schema))
