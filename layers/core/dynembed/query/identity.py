"""Who is searching: the identity API Gateway verified, mapped to the ACL principals and the
tenant the index filters on. Pure (no AWS calls, no environment), so the rules are unit-tested.

An HTTP API (payload 2.0) puts what its authorizer verified in ``requestContext.authorizer``:
``jwt.claims`` for a JWT authorizer, ``iam`` (``userArn`` and friends) for IAM auth. Anything in
the request body is the caller's say-so and is never used for identity. No verified identity,
or one that maps to no principal, is refused: there is no anonymous search.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynembed.core.config import IamCaller, Settings
from dynembed.core.errors import AccessDeniedError

_SEPARATORS = re.compile(r"[\s,]+")


class MissingIdentityError(AccessDeniedError):
    """No verified identity at all (HTTP 401): no authorizer context, or no user id in it."""


@dataclass(frozen=True)
class ClaimsMapping:
    """Which claims mean what, and how a claim value becomes an ACL principal."""

    user_claim: str = "sub"
    groups_claim: str = "cognito:groups"
    """"" when the tokens carry no groups."""
    tenant_claim: str = "custom:tenant"
    """"" when the tokens carry no tenant."""
    user_prefix: str = ""
    group_prefix: str = ""
    iam_callers: Mapping[str, IamCaller] = field(default_factory=dict)
    """IAM role (or user) ARN -> the principals and tenant that caller searches as."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ClaimsMapping:
        return cls(
            user_claim=settings.identity_user_claim,
            groups_claim=settings.identity_groups_claim,
            tenant_claim=settings.identity_tenant_claim,
            user_prefix=settings.identity_user_prefix,
            group_prefix=settings.identity_group_prefix,
            iam_callers=dict(settings.identity_iam_callers),
        )


@dataclass(frozen=True)
class Identity:
    principals: tuple[str, ...]
    """ACL principals, exactly as the index stores them (user first, then groups)."""
    tenant: str | None
    subject: str
    """Who, for the logs: the user id, or the caller's ARN."""
    method: str
    """``jwt`` or ``iam``."""


def identity_from_request_context(
    request_context: Mapping[str, Any] | None, mapping: ClaimsMapping
) -> Identity:
    """The caller of an HTTP API request, from what its authorizer verified."""
    authorizer = (request_context or {}).get("authorizer") or {}
    if isinstance(authorizer.get("jwt"), Mapping):
        return identity_from_claims(authorizer["jwt"].get("claims") or {}, mapping)
    if isinstance(authorizer.get("iam"), Mapping):
        return identity_from_iam(authorizer["iam"], mapping)
    raise MissingIdentityError("no verified identity: the request passed neither a JWT nor an IAM authorizer")


def identity_from_claims(claims: Mapping[str, Any], mapping: ClaimsMapping) -> Identity:
    user = _text(claims.get(mapping.user_claim))
    if not user:
        raise MissingIdentityError(f"the token has no {mapping.user_claim!r} claim (the user id)")
    groups = claim_values(claims.get(mapping.groups_claim)) if mapping.groups_claim else []
    tenant = _text(claims.get(mapping.tenant_claim)) if mapping.tenant_claim else None
    principals = [mapping.user_prefix + user, *(mapping.group_prefix + group for group in groups)]
    return Identity(tuple(dict.fromkeys(principals)), tenant or None, user, "jwt")


def identity_from_iam(iam: Mapping[str, Any], mapping: ClaimsMapping) -> Identity:
    arn = _text(iam.get("userArn"))
    if not arn:
        raise MissingIdentityError("IAM authorizer context without a caller ARN")
    key = caller_key(arn)
    for configured, caller in mapping.iam_callers.items():
        if caller_key(configured) == key:
            return Identity(tuple(dict.fromkeys(caller.principals)), caller.tenant, arn, "iam")
    raise AccessDeniedError(f"IAM caller {arn} is not a configured search caller")


def claim_values(value: Any) -> list[str]:
    """A multi-valued claim as a list: a JSON list, API Gateway's flattened ``"[a b]"``, or a
    comma- or space-separated string. Group names with spaces survive only in real lists."""
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        items = [str(v).strip() for v in value]
    else:
        text = str(value).strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return claim_values(parsed)
            text = text[1:-1]
        items = _SEPARATORS.split(text)
    return list(dict.fromkeys(item for item in items if item))


def caller_key(arn: str) -> tuple[str, ...]:
    """What identifies an IAM caller across its ARN forms. An assumed-role session
    (``arn:aws:sts::<acct>:assumed-role/<name>/<session>``) is its role
    (``arn:aws:iam::<acct>:role/<path>/<name>``): account and role name, since the session ARN
    carries no role path."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return (arn,)
    _, partition, service, _, account, resource = parts
    kind, _, rest = resource.partition("/")
    if service == "sts" and kind == "assumed-role":
        return (partition, account, "role", rest.split("/", 1)[0])
    if service == "iam" and kind in {"role", "user"}:
        return (partition, account, kind, rest.rsplit("/", 1)[-1])
    return (arn,)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()
