"""What the DynamoDB adapters share: binding a pynamodb model to a table chosen at run time,
and turning throttling into TransientError (retried by the event source or the workflow)."""

from __future__ import annotations

from functools import cache
from typing import NoReturn, TypeVar, cast

from botocore.exceptions import ClientError
from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model

from dynembed.core.errors import TransientError

THROTTLING = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)

M = TypeVar("M", bound=Model)


def bind(model: type[M], table_name: str, region: str, host: str | None) -> type[M]:
    """A subclass of ``model`` bound to ``table_name`` in ``region`` (``host``: moto locally).
    One per argument set, so a new local stack on another port gets a new binding."""
    return cast("type[M]", _bound(model, table_name, region, host))


@cache
def _bound(model: type[Model], table_name: str, region: str, host: str | None) -> type[Model]:
    meta = type(
        "Meta", (), {"table_name": table_name, "region": region, "host": host, "max_retry_attempts": 5}
    )
    return type(f"{model.__name__}_{table_name}", (model,), {"Meta": meta})


def is_condition_failure(exc: PynamoDBException) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


def raise_transient_or(exc: PynamoDBException, what: str) -> NoReturn:
    """TransientError for throttling, else the original error."""
    if exc.cause_response_code in THROTTLING:
        raise TransientError(f"{what}: {exc.cause_response_code}") from exc
    raise exc


def raise_client(exc: ClientError, what: str) -> NoReturn:
    """The boto3 twin of ``raise_transient_or``."""
    code = exc.response.get("Error", {}).get("Code", "")
    if code in THROTTLING:
        raise TransientError(f"{what}: {code}") from exc
    raise exc
