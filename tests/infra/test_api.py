"""The search edge: an HTTP API whose routes all authorise (JWT or IAM), access logs, and a search
function only the API and the named back ends may invoke."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from dynembed.core.config import IamCaller
from tests.infra.conftest import INVOKER_ROLE_ARN, JWT_AUDIENCE, JWT_ISSUER, Synth

pytestmark = pytest.mark.infra


def _routes(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in synth.of_type("AWS::ApiGatewayV2::Route").values()
    }


def _env(synth: Synth) -> dict[str, str]:
    return dict(synth.resources[synth.function_id("search")]["Properties"]["Environment"]["Variables"])


def test_default_api_authorises_by_iam_only(synth: Synth) -> None:
    # GIVEN the default context (no JWT issuer)  THEN one HTTP API with the IAM route only
    (api,) = synth.of_type("AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["ProtocolType"] == "HTTP"
    routes = _routes(synth)
    assert set(routes) == {"POST /iam/search"}
    assert routes["POST /iam/search"]["AuthorizationType"] == "AWS_IAM"
    assert not synth.of_type("AWS::ApiGatewayV2::Authorizer")
    # AND no caller is mapped: every IAM-authorised request is refused by the function
    assert _env(synth)["DYNEMBED_IDENTITY_IAM_CALLERS"] == "{}"


def test_jwt_authorizer_has_the_configured_issuer_and_audience(vpc_synth: Synth) -> None:
    vpc_synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {
            "AuthorizerType": "JWT",
            "IdentitySource": ["$request.header.Authorization"],
            "JwtConfiguration": {"Issuer": JWT_ISSUER, "Audience": JWT_AUDIENCE},
        },
    )


def test_every_route_uses_an_authorizer_and_the_search_function(vpc_synth: Synth) -> None:
    (authorizer_id,) = vpc_synth.of_type("AWS::ApiGatewayV2::Authorizer")
    routes = _routes(vpc_synth)
    assert set(routes) == {"POST /search", "POST /iam/search"}
    assert routes["POST /search"]["AuthorizationType"] == "JWT"
    assert routes["POST /search"]["AuthorizerId"] == {"Ref": authorizer_id}
    assert routes["POST /iam/search"]["AuthorizationType"] == "AWS_IAM"
    search_fn = vpc_synth.function_id("search")
    for integration in vpc_synth.of_type("AWS::ApiGatewayV2::Integration").values():
        assert integration["Properties"]["IntegrationUri"] == {"Fn::GetAtt": [search_fn, "Arn"]}
        assert integration["Properties"]["PayloadFormatVersion"] == "2.0"


def test_claims_mapping_reaches_the_function_as_settings(vpc_synth: Synth) -> None:
    env = _env(vpc_synth)
    assert (env["DYNEMBED_IDENTITY_USER_CLAIM"], env["DYNEMBED_IDENTITY_GROUPS_CLAIM"]) == ("sub", "groups")
    assert env["DYNEMBED_IDENTITY_TENANT_CLAIM"] == "org"
    assert (env["DYNEMBED_IDENTITY_USER_PREFIX"], env["DYNEMBED_IDENTITY_GROUP_PREFIX"]) == (
        "user:",
        "group:",
    )
    callers = json.loads(env["DYNEMBED_IDENTITY_IAM_CALLERS"])
    assert IamCaller.model_validate(callers[INVOKER_ROLE_ARN]) == IamCaller(
        principals=("group:support",), tenant="acme"
    )


def test_stage_logs_every_request_as_json_and_throttles(synth: Synth) -> None:
    (stage,) = synth.of_type("AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "$default" and props["AutoDeploy"] is True
    log_group = synth.resources[props["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]]["Properties"]
    assert "KmsKeyId" in log_group and log_group["RetentionInDays"] == 30
    fields = json.loads(props["AccessLogSettings"]["Format"])
    assert {"requestId", "sourceIp", "routeKey", "status", "authorizerError"} <= fields.keys()
    assert props["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 100, "ThrottlingRateLimit": 50}


def _permissions(synth: Synth) -> list[dict[str, Any]]:
    search_fn = synth.function_id("search")
    return [
        p["Properties"]
        for p in synth.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [search_fn, "Arn"]}
    ]


def test_only_the_api_may_invoke_the_search_function_by_default(synth: Synth) -> None:
    permissions = _permissions(synth)
    assert [p["Principal"] for p in permissions] == ["apigateway.amazonaws.com"]
    source = json.dumps(permissions[0]["SourceArn"])
    assert synth.logical_id(synth.stack.search_api.api) in source and source.endswith('/*/*/iam/search"]]}')


def test_named_back_ends_may_invoke_the_search_function_directly(vpc_synth: Synth) -> None:
    principals = sorted(p["Principal"] for p in _permissions(vpc_synth))
    assert principals == sorted(["apigateway.amazonaws.com", "apigateway.amazonaws.com", INVOKER_ROLE_ARN])
    vpc_synth.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {"Principal": INVOKER_ROLE_ARN, "Action": "lambda:InvokeFunction", "SourceArn": Match.absent()},
    )


def test_api_url_is_an_output(synth: Synth) -> None:
    assert "SearchApiUrl" in synth.template_json["Outputs"]
