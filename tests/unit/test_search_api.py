"""The search function behind the HTTP API: the verified identity decides who searches; the
body's principal and tenant are ignored; no identity, no search. Direct invocation keeps its
event shape for trusted back ends. Real handler, fakes behind ``Services`` (tests.harness)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from dynembed.core.config import IamCaller, Settings
from dynembed.core.errors import AccessDeniedError
from dynembed.core.schema import SourceSchema
from dynembed.wiring import Services
from dynembed_ops.local.lambda_runtime import LocalLambdaContext, load_handler
from tests.events import load_event
from tests.harness import SCHEMA, Harness

pytestmark = pytest.mark.unit

USER = "7d3f6a2e-0b1c-4d5e-8f90-a1b2c3d4e5f6"  # the sub of events/search_api_jwt.json


DOCS = [  # doc id, ACL, tenant
    ("eng-acme", ["eng"], "acme"),
    ("eng-globex", ["eng"], "globex"),
    ("admins-acme", ["admins"], "acme"),
    ("mine", [USER], "acme"),
    ("public-acme", ["public"], "acme"),
]


def _harness(schema: SourceSchema = SCHEMA) -> Harness:
    h = Harness(schema=schema)
    for doc_id, acl, tenant in DOCS:
        h.write(
            doc_id, title=f"Password reset: {doc_id}", body=f"reset password {doc_id}", acl=acl, tenant=tenant
        )
    h.run()
    return h


def _services(h: Harness, **settings: Any) -> Services:
    svc = h.services()
    svc.settings = Settings(index_alias=h.alias, **settings)
    return svc


def _invoke(event: dict[str, Any], svc: Services) -> dict[str, Any]:
    result: dict[str, Any] = load_handler("search")(
        event, LocalLambdaContext(function_name="dynembed-search"), svc=svc
    )
    return result


def _doc_ids(response: dict[str, Any]) -> set[str]:
    assert response["statusCode"] == 200, response
    return {r["doc_id"] for r in json.loads(response["body"])["results"]}


def _with_body(event: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return {**event, "body": json.dumps(body), "isBase64Encoded": False}


def test_body_principal_and_tenant_are_ignored_in_favour_of_the_claims(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN indexed docs of several ACLs and tenants, and the sample API event whose body claims
    # principal "admins" and tenant "globex" while the token says user USER, groups eng+support,
    # tenant acme
    svc = _services(_harness())
    event = load_event("search_api_jwt")
    assert json.loads(event["body"])["principal"] == "admins"
    # WHEN the search function handles it
    with caplog.at_level(logging.WARNING):
        response = _invoke(event, svc)
    # THEN it searched as the token's user and groups in the token's tenant, not as the body said
    assert _doc_ids(response) == {"eng-acme", "mine", "public-acme"}
    assert response["headers"]["content-type"] == "application/json"
    # AND the ignored fields were logged at warning
    assert any("ignored" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_iam_caller_searches_as_its_configured_principals(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN an IAM-authorised request (base64 body) from a role listed in the settings
    svc = _services(
        _harness(),
        identity_iam_callers={
            "arn:aws:iam::123456789012:role/support-backend": IamCaller(principals=("admins",), tenant="acme")
        },
    )
    # WHEN handled  THEN the role's principals and tenant apply
    assert _doc_ids(_invoke(load_event("search_api_iam"), svc)) == {"admins-acme", "public-acme"}


@pytest.mark.parametrize(
    "request_context",
    [
        {"authorizer": {"jwt": {"claims": {"cognito:groups": "[eng]", "custom:tenant": "acme"}}}},
        {"authorizer": {"jwt": {"claims": {"sub": ""}}}},
        {"authorizer": {}},
        {},
    ],
)
def test_missing_claims_are_refused_with_401_and_search_nothing(request_context: dict[str, Any]) -> None:
    svc = _services(_harness())
    event = {**load_event("search_api_jwt"), "requestContext": request_context}
    response = _invoke(event, svc)
    assert response["statusCode"] == 401
    assert "results" not in response["body"]


def test_unlisted_iam_caller_is_refused_with_403() -> None:
    response = _invoke(load_event("search_api_iam"), _services(_harness()))
    assert response["statusCode"] == 403


def test_groups_claim_as_a_list_also_works() -> None:
    svc = _services(_harness())
    event = load_event("search_api_jwt")
    event["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"] = ["admins"]
    assert _doc_ids(_invoke(event, svc)) == {"admins-acme", "mine", "public-acme"}


def test_principal_prefixes_come_from_the_settings() -> None:
    # GIVEN ACLs written as user:/group: principals and a mapping with those prefixes
    h = Harness()
    h.write("d1", title="Prefixed ACL doc", body="reset password", acl=["group:eng"], tenant="acme")
    h.write("d2", title="Plain ACL doc", body="reset password", acl=["eng"], tenant="acme")
    h.run()
    svc = _services(h, identity_user_prefix="user:", identity_group_prefix="group:")
    assert _doc_ids(_invoke(load_event("search_api_jwt"), svc)) == {"d1"}


def test_tenant_isolation_refuses_a_search_without_tenant() -> None:
    # GIVEN a schema with tenant isolation and a token without a tenant claim
    svc = _services(_harness(SCHEMA.model_copy(update={"tenant_isolation": True})))
    event = load_event("search_api_jwt")
    del event["requestContext"]["authorizer"]["jwt"]["claims"]["custom:tenant"]
    # WHEN searched through the API  THEN refused (403), though the body names a tenant
    response = _invoke(event, svc)
    assert response["statusCode"] == 403
    assert "tenant isolation" in json.loads(response["body"])["message"]
    # AND directly: a trusted back end must name the tenant too
    with pytest.raises(AccessDeniedError, match="tenant isolation"):
        _invoke({"text": "reset password", "principal": "eng"}, svc)
    direct = _invoke({"text": "reset password", "principal": "eng", "tenant": "globex"}, svc)
    assert {r["doc_id"] for r in direct["results"]} == {"eng-globex"}


def test_tenant_isolation_with_a_tenant_claim_searches_that_tenant() -> None:
    svc = _services(_harness(SCHEMA.model_copy(update={"tenant_isolation": True})))
    assert _doc_ids(_invoke(load_event("search_api_jwt"), svc)) == {"eng-acme", "mine", "public-acme"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (None, 400),
        ({"k": 3}, 400),
        ({"text": "x", "k": 0}, 400),
        ({"text": "x", "unknown": 1}, 400),
        ({"text": "reset", "generation": "g-none"}, 404),
        ({"text": "   "}, 400),
    ],
)
def test_bad_requests_get_4xx(body: dict[str, Any] | None, status: int) -> None:
    svc = _services(_harness())
    event = load_event("search_api_jwt")
    event = {**event, "body": None} if body is None else _with_body(event, body)
    assert _invoke(event, svc)["statusCode"] == status


def test_base64_body_is_decoded() -> None:
    svc = _services(_harness())
    event = load_event("search_api_jwt")
    event["body"] = base64.b64encode(json.dumps({"text": "reset password", "k": 2}).encode()).decode()
    event["isBase64Encoded"] = True
    response = _invoke(event, svc)
    assert len(json.loads(response["body"])["results"]) == 2


def test_direct_invocation_keeps_its_shape_for_trusted_back_ends() -> None:
    svc = _services(_harness())
    result = _invoke({"text": "reset password", "principal": ["admins"], "tenant": "acme"}, svc)
    assert {r["doc_id"] for r in result["results"]} == {"admins-acme", "public-acme"}
    with pytest.raises(Exception, match="principal"):
        _invoke({"text": "reset password"}, svc)


def test_a_generation_that_cannot_be_searched_is_a_409_naming_its_status() -> None:
    # GIVEN a rejected candidate (it no longer receives changes)
    from dynembed.rebuild.generations import create, new_generation, reject

    h = _harness()
    svc = _services(h)
    gen = new_generation(h.embedder.spec, h.chunker, h.index_prefix, generation_id="g-rejected")
    create(h.registry, h.index, gen)
    reject(h.registry, "g-rejected", "nDCG fell")
    # WHEN an API caller asks for it by name (the error escaped the handler: a 500, and the
    # function's Errors alarm fired on a caller's mistake)
    event = _with_body(load_event("search_api_jwt"), {"text": "reset password", "generation": "g-rejected"})
    response = _invoke(event, svc)
    # THEN a 409 names the generation and its status; nothing is searched
    assert response["statusCode"] == 409, response
    message = json.loads(response["body"])["message"]
    assert "g-rejected" in message and "rejected" in message
