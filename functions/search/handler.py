"""search: k-NN over the active generation (or a named one) with the access filter inside the query.

Two ways in. Through the HTTP API (payload 2.0), who searches comes from the identity the
authorizer verified (dynembed.query.identity); a ``principal`` or ``tenant`` in the body is ignored.
The answer is an HTTP response. Invoked directly (trusted back ends the function's resource
policy names), the event is a ``SearchRequest`` that names its principal and tenant, and the
answer is the response object itself.
"""

import base64
import json
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from dynembed.core.errors import AccessDeniedError, GenerationNotSearchableError, UnknownGenerationError
from dynembed.core.observability import logger, metrics, tracer
from dynembed.query.identity import ClaimsMapping, MissingIdentityError, identity_from_request_context
from dynembed.query.request import ApiSearchBody, SearchRequest
from dynembed.wiring import Services, services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics  # the sampled queries' signals (WeakRetrieval, ZeroResults, SearchLatency)
def handler(event: dict[str, Any], context: LambdaContext, svc: Services | None = None) -> dict[str, Any]:
    svc = svc or services()
    if is_http_api_event(event):
        return _api(event, svc)
    request = SearchRequest.model_validate(event)
    response = svc.search(
        request.text,
        request.principal,
        k=request.k,
        filters=request.filters,
        tenant=request.tenant,
        generation=request.generation,
    )
    return asdict(response)


def is_http_api_event(event: Any) -> bool:
    return isinstance(event, dict) and event.get("version") == "2.0" and "requestContext" in event


def _api(event: dict[str, Any], svc: Services) -> dict[str, Any]:
    try:
        identity = identity_from_request_context(
            event.get("requestContext"), ClaimsMapping.from_settings(svc.settings)
        )
    except MissingIdentityError as exc:
        logger.warning("search refused: no identity", extra={"reason": str(exc)})
        return _http(401, {"message": "unauthenticated"}, {"www-authenticate": "Bearer"})
    except AccessDeniedError as exc:
        logger.warning("search refused", extra={"reason": str(exc)})
        return _http(403, {"message": str(exc)})
    try:
        body = ApiSearchBody.model_validate_json(_body(event))
    except ValidationError as exc:
        return _http(400, {"message": "invalid request", "errors": exc.errors(include_url=False)})
    if body.ignored_fields:
        logger.warning(
            "search: principal/tenant in the body ignored; the verified identity decides",
            extra={"ignored": body.ignored_fields, "subject": identity.subject},
        )
    try:
        response = svc.search(
            body.text,
            list(identity.principals),
            k=body.k,
            filters=body.filters,
            tenant=identity.tenant,
            generation=body.generation,
        )
    except AccessDeniedError as exc:
        logger.warning("search refused", extra={"reason": str(exc), "subject": identity.subject})
        return _http(403, {"message": str(exc)})
    except UnknownGenerationError as exc:
        return _http(404, {"message": str(exc)})
    except GenerationNotSearchableError as exc:  # failed, rejected, retired: the caller's mistake
        return _http(409, {"message": str(exc)})
    except ValueError as exc:  # empty text, a bad metadata filter
        return _http(400, {"message": str(exc)})
    return _http(200, asdict(response))


def _body(event: dict[str, Any]) -> str:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(raw).decode("utf-8")
    return str(raw)


def _http(status: int, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(payload, default=str),
    }
