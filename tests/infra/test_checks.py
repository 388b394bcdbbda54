"""Synth-time checks: bad settings fail before any resource exists, with the setting named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from dynembed.core.config import TUNING, Tuning
from dynembed.core.errors import ConfigError
from dynembed_infra import build_app, build_stack
from dynembed_infra.context import DeploymentConfig
from dynembed_infra.ingest import check_visibility_timeout
from dynembed_infra.workflow import check_definition
from tests.infra.conftest import EXISTING_STREAM_ARN, EXISTING_TABLE, repository_context

pytestmark = pytest.mark.infra


class ShortVisibility(Tuning):
    @property
    def sqs_visibility_timeout_s(self) -> int:
        return 2 * self.sync_timeout_s


# ---- visibility timeout ------------------------------------------------------------------------


def test_visibility_check_accepts_six_timeouts_and_refuses_less() -> None:
    check_visibility_timeout(6 * 120, 120)
    with pytest.raises(ConfigError, match=r"719s is below 6 x the sync function timeout \(120s\)"):
        check_visibility_timeout(719, 120)


def test_stack_with_short_visibility_timeout_fails_at_synth() -> None:
    # GIVEN tuning whose queue visibility is only twice the sync timeout
    app = App(context=repository_context())
    # WHEN the stack is built  THEN it refuses, naming both settings
    with pytest.raises(ConfigError, match="sqs_visibility_timeout_s"):
        build_stack(app, tuning=ShortVisibility())
    assert TUNING.sqs_visibility_timeout_s >= 6 * TUNING.sync_timeout_s


# ---- context -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (
            {"dynembed:existingSourceTableName": EXISTING_TABLE},
            "existingSourceTableName is set but dynembed:existingSourceStreamArn is not",
        ),
        (
            {"dynembed:existingSourceStreamArn": EXISTING_STREAM_ARN},
            "existingSourceStreamArn is set but dynembed:existingSourceTableName is not",
        ),
        (
            {
                "dynembed:existingSourceTableName": EXISTING_TABLE,
                "dynembed:existingSourceStreamArn": f"arn:aws:dynamodb:eu-west-1:123456789012:table/{EXISTING_TABLE}",
            },
            "is not a DynamoDB stream ARN",
        ),
        (
            {
                "dynembed:existingSourceTableName": "other",
                "dynembed:existingSourceStreamArn": EXISTING_STREAM_ARN,
            },
            f"belongs to table '{EXISTING_TABLE}', not dynembed:existingSourceTableName 'other'",
        ),
        (
            {"dynembed:existingOpenSearchEndpoint": "https://search-x.eu-west-1.es.amazonaws.com"},
            "existingOpenSearchDomainArn is not",
        ),
        (
            {
                "dynembed:existingOpenSearchEndpoint": "http://search-x.example",
                "dynembed:existingOpenSearchDomainArn": "arn:aws:es:eu-west-1:123456789012:domain/x1x",
            },
            "must be an https:// URL",
        ),
        (
            {"dynembed:existingSourceTableKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/abc"},
            "existingSourceTableKeyArn is set but no existing table is",
        ),
        ({"dynembed:evalSetLocations": ["golden-sets/faq"]}, "is not an s3://bucket/prefix location"),
        ({"dynembed:sourceTable": "typo"}, "unknown CDK context key 'dynembed:sourceTable'"),
        (
            {"dynembed:sourceSchema": {"content_attributes": []}},
            "dynembed:sourceSchema: invalid source schema",
        ),
        ({"dynembed:sourceSchema": "doc_id"}, "dynembed:sourceSchema: must be an object"),
        ({"dynembed:bedrockModels": ["titan v2"]}, "is not a Bedrock model id"),
        ({"dynembed:logRetentionDays": 31}, "dynembed:logRetentionDays"),
        ({"dynembed:openSearch": {"dataNodes": 3}}, "must be a multiple of availabilityZones"),
        ({"dynembed:vpc": {"vpcId": "vpc-0abc", "subnetIds": ["subnet-0a"], "availabilityZones": []}}, "vpc"),
        ({"dynembed:searchApi": {"jwtIssuer": "http://idp.example"}}, "is not an https:// issuer URL"),
        (
            {"dynembed:searchApi": {"jwtIssuer": "https://idp.example"}},
            "give searchApi.jwtIssuer and searchApi.jwtAudience together",
        ),
        (
            {"dynembed:searchApi": {"jwtAudience": ["app"]}},
            "give searchApi.jwtIssuer and searchApi.jwtAudience",
        ),
        ({"dynembed:searchApi": {"claims": {"user": ""}}}, "dynembed:searchApi.claims.user"),
        ({"dynembed:searchApi": {"claims": {"email": "mail"}}}, "dynembed:searchApi.claims.email"),
        (
            {
                "dynembed:searchApi": {
                    "iamCallers": {"arn:aws:sts::123456789012:assumed-role/x/s": {"principals": ["a"]}}
                }
            },
            "is not an IAM role or user ARN",
        ),
        (
            {"dynembed:searchApi": {"iamCallers": {"arn:aws:iam::123456789012:role/x": {"principals": []}}}},
            "principals",
        ),
        (
            {
                "dynembed:searchApi": {
                    "iamCallers": {
                        f"arn:aws:iam::123456789012:role/app-{n}": {"principals": ["group:" + "x" * 40]}
                        for n in range(10)
                    }
                }
            },
            "4 KB environment",
        ),
        (
            {"dynembed:searchInvokerRoleArns": ["arn:aws:iam::123456789012:user/bob"]},
            "is not an IAM role ARN",
        ),
    ],
)
def test_invalid_context_fails_with_the_key_named(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid CDK context|unknown CDK context key") as raised:
        DeploymentConfig.from_context(context)
    assert message in str(raised.value)


def test_invalid_context_stops_the_app_before_any_resource() -> None:
    with pytest.raises(ConfigError, match="give both or neither"):
        build_app(repository_context(**{"dynembed:existingSourceTableName": EXISTING_TABLE}))


def test_context_source_schema_reaches_the_config() -> None:
    schema = {"id_attribute": "pk", "content_attributes": ["text"], "access_attributes": ["groups"]}
    config = DeploymentConfig.from_context({"dynembed:sourceSchema": schema})
    assert config.source_schema.id_attribute == "pk"
    assert config.source_schema.content_attributes == ("text",)


def test_search_api_context_reaches_the_config() -> None:
    config = DeploymentConfig.from_context(
        {
            "dynembed:searchApi": {
                "jwtIssuer": "https://idp.example/realms/main",
                "jwtAudience": ["search"],
                "claims": {"groups": "", "userPrefix": "user:"},
            },
            "dynembed:searchInvokerRoleArns": ["arn:aws:iam::123456789012:role/backend"],
        }
    )
    assert config.search_api.jwt_audience == ("search",)
    assert (config.search_api.claims.groups, config.search_api.claims.user_prefix) == ("", "user:")
    assert config.search_invoker_role_arns == ("arn:aws:iam::123456789012:role/backend",)


def test_repository_cdk_json_is_valid_context() -> None:
    config = DeploymentConfig.from_context(repository_context())
    assert config.creates_source_table and config.creates_domain


# ---- state machine definition ----------------------------------------------------------------


def test_definition_check_accepts_the_function_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "ok.asl.json"
    path.write_text(
        json.dumps({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${WorkflowFunctionArn}"}}})
    )
    check_definition(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"StartAt": "A", "States": {"A": {"Resource": "${RegistryTable}"}}}', r"\$\{RegistryTable\}"),
        ("{not json", "is not valid JSON"),
        ('{"States": {}}', "has no StartAt/States"),
    ],
)
def test_definition_check_refuses_what_the_stack_cannot_deploy(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.asl.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        check_definition(path)
