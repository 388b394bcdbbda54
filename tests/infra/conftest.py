"""Synthesised stacks shared by the infrastructure tests.

Synthesis costs seconds, so each configuration is synthesised once per session and every test
reads the same template. Bundling is skipped (``aws:cdk:bundling-stacks: []``): the layer asset
is the source folder, no pip runs, nothing leaves the machine. The context starts from the
repository's ``cdk.json``, so the tests see what ``make synth`` deploys.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(REPO_ROOT / "infra"))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import assertions  # noqa: E402

from dynembed_infra import build_app  # noqa: E402
from dynembed_infra.stack import DynembedStack  # noqa: E402

SKIP_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}

EXISTING_TABLE = "customer-docs"
EXISTING_STREAM_ARN = (
    f"arn:aws:dynamodb:eu-west-1:123456789012:table/{EXISTING_TABLE}/stream/2026-01-01T00:00:00.000"
)
EXISTING_TABLE_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
EVAL_DIR = "s3://golden-sets/python-faq"
EXISTING_ENDPOINT = "https://search-shared-abc123.eu-west-1.es.amazonaws.com"
EXISTING_DOMAIN_ARN = "arn:aws:es:eu-west-1:123456789012:domain/shared"
JWT_ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
JWT_AUDIENCE = ["3n4b5urk1ft4fl3mg5e62d9ado"]
INVOKER_ROLE_ARN = "arn:aws:iam::123456789012:role/support-backend"
SEARCH_API = {
    "jwtIssuer": JWT_ISSUER,
    "jwtAudience": JWT_AUDIENCE,
    "claims": {
        "user": "sub",
        "groups": "groups",
        "tenant": "org",
        "userPrefix": "user:",
        "groupPrefix": "group:",
    },
    "iamCallers": {INVOKER_ROLE_ARN: {"principals": ["group:support"], "tenant": "acme"}},
}
VPC = {
    "vpcId": "vpc-0123456789abcdef0",
    "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1", "subnet-0123456789abcdef2"],
    "availabilityZones": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
}


def repository_context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context.update(SKIP_BUNDLING)
    context.update(overrides)
    return context


@dataclass
class Synth:
    stack: DynembedStack
    template_json: dict[str, Any]
    template: assertions.Template
    report: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template_json["Resources"])

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res["Type"] == cfn_type}

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.resolve(self.stack.get_logical_id(construct.node.default_child)))

    def function_id(self, name: str) -> str:
        """Logical id of the Lambda function ``dynembed-<name>``."""
        for lid, res in self.of_type("AWS::Lambda::Function").items():
            if res["Properties"].get("FunctionName") == f"dynembed-{name}":
                return lid
        raise KeyError(name)

    def role_id_of_function(self, name: str) -> str:
        role = self.resources[self.function_id(name)]["Properties"]["Role"]
        return str(role["Fn::GetAtt"][0])

    def statements_of_role(self, role_id: str) -> list[dict[str, Any]]:
        statements: list[dict[str, Any]] = []
        for policy in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in policy["Properties"]["Roles"]:
                statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
        return statements


def synthesise(tmp_dir: Path, context: dict[str, Any]) -> Synth:
    app, stack = build_app(context, outdir=str(tmp_dir))
    assembly = app.synth()
    template_json = assembly.get_stack_by_name(stack.stack_name).template
    report = json.loads((Path(assembly.directory) / "validation-report.json").read_text())
    return Synth(stack, template_json, assertions.Template.from_json(template_json), report)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    """The default deployment: a trial source table and a managed OpenSearch domain."""
    yield synthesise(tmp_path_factory.mktemp("cdk-default"), repository_context())


@pytest.fixture(scope="session")
def vpc_synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    """An attached (KMS-encrypted) source table, golden sets in S3, a three-AZ domain with
    dedicated masters inside a VPC, and a search API with a JWT authorizer, IAM callers and a
    back end allowed to invoke the search function directly."""
    context = repository_context(
        **{
            "dynembed:existingSourceTableName": EXISTING_TABLE,
            "dynembed:existingSourceStreamArn": EXISTING_STREAM_ARN,
            "dynembed:existingSourceTableKeyArn": EXISTING_TABLE_KEY_ARN,
            "dynembed:evalDir": EVAL_DIR,
            "dynembed:evalSetLocations": ["s3://team-evals"],
            "dynembed:vpc": VPC,
            "dynembed:openSearch": {"dataNodes": 3, "availabilityZones": 3, "dedicatedMasterNodes": 3},
            "dynembed:searchApi": SEARCH_API,
            "dynembed:searchInvokerRoleArns": [INVOKER_ROLE_ARN],
        }
    )
    yield synthesise(tmp_path_factory.mktemp("cdk-vpc"), context)


@pytest.fixture(scope="session")
def endpoint_synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    """An existing OpenSearch domain: no domain resource, grants on the given ARN."""
    context = repository_context(
        **{
            "dynembed:existingOpenSearchEndpoint": EXISTING_ENDPOINT,
            "dynembed:existingOpenSearchDomainArn": EXISTING_DOMAIN_ARN,
        }
    )
    yield synthesise(tmp_path_factory.mktemp("cdk-endpoint"), context)
