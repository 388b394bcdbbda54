"""sentinel: scheduled; writes the sentinel item, times it until searchable through the alias
and its delete until gone → EndToEndFreshnessSeconds, EndToEndDeleteSeconds."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from dynembed.core.observability import logger, metrics, tracer
from dynembed.quality.sentinel import run_sentinel, search_as_sentinel
from dynembed.wiring import Services, services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, svc: Services | None = None) -> dict[str, Any]:
    svc = svc or services()
    result = run_sentinel(svc.schema, svc.sentinel_writer, search_as_sentinel(svc), svc.telemetry)
    return result.to_dict()
