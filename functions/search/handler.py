"""search: k-NN over the active generation (or a named one) with the access filter inside the query."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dynembed.core.observability import logger, tracer
from dynembed.query.request import SearchRequest
from dynembed.wiring import Services, services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=SearchRequest)
def handler(event: SearchRequest, context: LambdaContext, svc: Services | None = None) -> dict[str, Any]:
    svc = svc or services()
    response = svc.search(
        event.text,
        event.principal,
        k=event.k,
        filters=event.filters,
        tenant=event.tenant,
        generation=event.generation,
    )
    return asdict(response)
