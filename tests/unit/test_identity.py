"""Claims -> principals and tenant: the verified identity decides who searches, nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from dynembed.core.config import IamCaller, Settings
from dynembed.core.errors import AccessDeniedError
from dynembed.query.identity import (
    ClaimsMapping,
    MissingIdentityError,
    caller_key,
    claim_values,
    identity_from_claims,
    identity_from_request_context,
)
from tests.events import load_event

pytestmark = pytest.mark.unit

CALLER_ROLE = "arn:aws:iam::123456789012:role/support-backend"


def _jwt(claims: dict[str, Any]) -> dict[str, Any]:
    return {"authorizer": {"jwt": {"claims": claims, "scopes": None}}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["eng", "support"], ["eng", "support"]),
        ("[eng support]", ["eng", "support"]),  # how an HTTP API flattens an array claim
        ('["eng", "support"]', ["eng", "support"]),
        ("eng,support", ["eng", "support"]),
        ("eng, support", ["eng", "support"]),
        ("eng support", ["eng", "support"]),
        ("eng", ["eng"]),
        ("[]", []),
        ("", []),
        (None, []),
        (["eng", "eng", " "], ["eng"]),
    ],
)
def test_groups_claim_as_list_or_string(value: Any, expected: list[str]) -> None:
    assert claim_values(value) == expected


def test_sample_jwt_event_maps_user_groups_and_tenant_from_the_claims() -> None:
    # GIVEN the HTTP API sample event (groups flattened to "[eng support]", tenant claim acme)
    event = load_event("search_api_jwt")
    # WHEN mapped with the default claims mapping
    identity = identity_from_request_context(event["requestContext"], ClaimsMapping())
    # THEN the principals are the user id and its groups, the tenant the claim's
    assert identity.principals == ("7d3f6a2e-0b1c-4d5e-8f90-a1b2c3d4e5f6", "eng", "support")
    assert identity.tenant == "acme"
    assert identity.method == "jwt"


def test_prefixes_and_claim_names_are_configurable() -> None:
    mapping = ClaimsMapping(
        user_claim="email",
        groups_claim="groups",
        tenant_claim="org",
        user_prefix="user:",
        group_prefix="group:",
    )
    claims = {"email": "ann@example.com", "groups": "a,b", "org": "acme", "sub": "ignored"}
    identity = identity_from_claims(claims, mapping)
    assert identity.principals == ("user:ann@example.com", "group:a", "group:b")
    assert identity.tenant == "acme"


def test_mapping_from_settings() -> None:
    settings = Settings(
        identity_user_prefix="user:",
        identity_groups_claim="",
        identity_iam_callers={CALLER_ROLE: IamCaller(principals=("svc",))},
    )
    mapping = ClaimsMapping.from_settings(settings)
    assert (mapping.user_prefix, mapping.groups_claim) == ("user:", "")
    assert mapping.iam_callers[CALLER_ROLE].principals == ("svc",)
    # no groups claim configured: groups in the token are not read
    assert identity_from_claims({"sub": "u1", "cognito:groups": "admins"}, mapping).principals == ("user:u1",)


@pytest.mark.parametrize(
    "request_context",
    [
        None,
        {},
        {"authorizer": None},
        {"authorizer": {"lambda": {"principal": "admins"}}},
        _jwt({}),
        _jwt({"sub": ""}),
        _jwt({"sub": "   ", "cognito:groups": "[admins]"}),
        {"authorizer": {"iam": {"userArn": ""}}},
    ],
)
def test_no_verified_user_is_refused(request_context: Any) -> None:
    with pytest.raises(MissingIdentityError):
        identity_from_request_context(request_context, ClaimsMapping())


def test_missing_tenant_claim_gives_no_tenant() -> None:
    identity = identity_from_request_context(_jwt({"sub": "u1", "custom:tenant": ""}), ClaimsMapping())
    assert identity.tenant is None


def test_iam_caller_maps_through_the_configured_table() -> None:
    # GIVEN the IAM sample event: an assumed-role session of support-backend
    event = load_event("search_api_iam")
    mapping = ClaimsMapping(
        iam_callers={
            "arn:aws:iam::123456789012:role/teams/support-backend": IamCaller(
                principals=("support", "support"), tenant="acme"
            )
        }
    )
    # WHEN mapped  THEN the role's configured principals and tenant (the role path does not matter)
    identity = identity_from_request_context(event["requestContext"], mapping)
    assert (identity.principals, identity.tenant, identity.method) == (("support",), "acme", "iam")


def test_unlisted_iam_caller_is_refused() -> None:
    event = load_event("search_api_iam")
    mapping = ClaimsMapping(
        iam_callers={"arn:aws:iam::123456789012:role/other": IamCaller(principals=("x",))}
    )
    with pytest.raises(AccessDeniedError, match="not a configured search caller"):
        identity_from_request_context(event["requestContext"], mapping)


@pytest.mark.parametrize(
    ("arn", "key"),
    [
        ("arn:aws:sts::123456789012:assumed-role/app/session-1", ("aws", "123456789012", "role", "app")),
        ("arn:aws:iam::123456789012:role/app", ("aws", "123456789012", "role", "app")),
        ("arn:aws:iam::123456789012:role/path/to/app", ("aws", "123456789012", "role", "app")),
        ("arn:aws:iam::123456789012:user/bob", ("aws", "123456789012", "user", "bob")),
        ("not-an-arn", ("not-an-arn",)),
    ],
)
def test_caller_key_matches_sessions_to_their_role(arn: str, key: tuple[str, ...]) -> None:
    assert caller_key(arn) == key


def test_same_role_name_in_another_account_is_another_caller() -> None:
    assert caller_key("arn:aws:sts::111111111111:assumed-role/app/s") != caller_key(
        "arn:aws:iam::123456789012:role/app"
    )
