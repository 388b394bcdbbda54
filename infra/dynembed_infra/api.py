"""The search API: an HTTP API (API Gateway v2) in front of the search function, and who else
may invoke that function at all.

Routes (payload format 2.0, so the function sees ``requestContext.authorizer``):

- ``POST /search``: a JWT authorizer checks the bearer token against the configured issuer
  and audience (context ``dynembed:searchApi``); only when an issuer is configured.
- ``POST /iam/search``: IAM authorization (SigV4). The function maps the caller's role to its
  principals through ``searchApi.iamCallers``; a caller not listed there is refused.

The function takes the principals and the tenant from that verified identity and ignores any in
the body (``functions/search/handler.py``, ``dynembed.query.identity``). Its resource policy lets the
API invoke it on these routes, plus the roles named in ``dynembed:searchInvokerRoleArns``
(trusted back ends invoking it directly, naming the principal themselves) and nobody else.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from dynembed.core.config import NAMES
from dynembed_infra.context import DeploymentConfig
from dynembed_infra.functions import RETENTION, DynembedFunction

JWT_ROUTE = "/search"
IAM_ROUTE = "/iam/search"
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "sourceIp": "$context.identity.sourceIp",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
}
"""One JSON line per request: who called from where, which route, the outcome. No claims, no body."""


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    def __init__(self, group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(group)
        self._format = apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":")))

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class SearchApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        search: DynembedFunction,
        key: kms.IKey,
        config: DeploymentConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = config.search_api
        self.api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=f"{NAMES.service}-search",
            description="dynembed search: principals and tenant from the verified identity (JWT or IAM)",
            create_default_stage=False,
        )
        self.log_group = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{NAMES.service}-search",
            retention=RETENTION[config.log_retention_days],
            encryption_key=key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            access_log_settings=_AccessLogs(self.log_group),
            throttle=apigwv2.ThrottleSettings(
                rate_limit=settings.throttle_rate_limit, burst_limit=settings.throttle_burst_limit
            ),
        )
        integration = integrations.HttpLambdaIntegration(
            "SearchFunction",
            search.function,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
        )
        self.jwt_authorizer: authorizers.HttpJwtAuthorizer | None = None
        self.routes: dict[str, list[apigwv2.HttpRoute]] = {}
        if settings.jwt_issuer:
            self.jwt_authorizer = authorizers.HttpJwtAuthorizer(
                "JwtAuthorizer",
                settings.jwt_issuer,
                jwt_audience=list(settings.jwt_audience),
                authorizer_name=f"{NAMES.service}-search-jwt",
            )
            self.routes["jwt"] = self.api.add_routes(
                path=JWT_ROUTE,
                methods=[apigwv2.HttpMethod.POST],
                integration=integration,
                authorizer=self.jwt_authorizer,
            )
        self.routes["iam"] = self.api.add_routes(
            path=IAM_ROUTE,
            methods=[apigwv2.HttpMethod.POST],
            integration=integration,
            authorizer=authorizers.HttpIamAuthorizer(),
        )
        # Trusted back ends may invoke the function directly (they name the principal). With
        # none named, only the API's permissions above are in the resource policy.
        for n, role_arn in enumerate(config.search_invoker_role_arns, start=1):
            search.function.add_permission(
                f"DirectInvoker{n}",
                principal=iam.ArnPrincipal(role_arn),
                action="lambda:InvokeFunction",
            )

    @property
    def url(self) -> str:
        return str(self.stage.url)
