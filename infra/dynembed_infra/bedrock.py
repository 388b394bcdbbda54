"""Bedrock embedding models the functions may invoke: exactly the configured foundation models."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from dynembed_infra.functions import DynembedFunction


class BedrockModels:
    def __init__(self, scope: Construct, model_ids: tuple[str, ...]) -> None:
        stack = Stack.of(scope)
        # Foundation-model ARNs have no account: arn:aws:bedrock:<region>::foundation-model/<id>
        self.model_arns = [
            stack.format_arn(
                service="bedrock",
                account="",
                resource="foundation-model",
                resource_name=model_id,
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            )
            for model_id in model_ids
        ]

    def grant_invoke(self, fn: DynembedFunction) -> None:
        fn.role.add_to_policy(iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=self.model_arns))
