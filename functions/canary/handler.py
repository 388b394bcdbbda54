"""canary: scheduled; the active generation on the golden set it was promoted with, plus the
probes, against its figures at promotion → CanaryNdcgDrop, CanaryRecallDrop, CanaryMrrDrop,
CanaryProbeFailures; the report is stored on the generation."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dynembed.core.observability import logger, metrics, tracer
from dynembed.quality.canary import CanaryRequest, run_canary, summary
from dynembed.wiring import Services, services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=CanaryRequest)
def handler(event: CanaryRequest, context: LambdaContext, svc: Services | None = None) -> dict[str, Any]:
    record = run_canary(svc or services(), generation_id=event.generation_id)
    return {"summary": summary(record), "reasons": record["reasons"]}
