"""workflow: the rebuild state machine's steps, and the actions ops invoke directly (rollback,
retire, targeted_backfill), routed by ``event["step"]`` through ``dynembed.rebuild.steps.STEPS``."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from dynembed.core.observability import logger, metrics, tracer
from dynembed.rebuild.steps import run_step
from dynembed.wiring import Services, services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, svc: Services | None = None) -> Any:
    logger.append_keys(step=event.get("step"), generation=(event.get("config") or {}).get("generation_id"))
    return run_step(event, svc or services(), remaining_s=context.get_remaining_time_in_millis() / 1000.0)
