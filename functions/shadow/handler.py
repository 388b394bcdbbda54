"""shadow: SQS shadow searches. A rebuild's candidate answers sampled live queries, as their
callers, off the response path; overlap@10 and RBO against the active generation's answer are
recorded for the rebuild report (dynembed.quality.shadow)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from dynembed.core.observability import logger, metrics, tracer
from dynembed.quality.shadow import process_shadow_batch
from dynembed.wiring import Services, services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, svc: Services | None = None) -> dict[str, Any]:
    return process_shadow_batch(event, svc or services())
