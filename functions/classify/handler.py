"""classify: DynamoDB Streams → one decision per record (skip, metadata, access, content, delete)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from dynembed.core.observability import logger, metrics, tracer
from dynembed.sync.pipeline import process_stream_batch
from dynembed.wiring import Services, services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, svc: Services | None = None) -> dict[str, Any]:
    return process_stream_batch(event, svc or services())
