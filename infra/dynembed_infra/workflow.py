"""Generation rebuilds: the workflow function and the state machine that drives it.

The state machine's definition is ``REBUILD_ASL_PATH``, the very file the local runtime runs
under moto; the stack only substitutes ``${WorkflowFunctionArn}``, and refuses (at synth) a
definition that asks for any other placeholder or is not a state machine at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dynembed.core.config import NAMES, TUNING, Tuning
from dynembed.core.errors import ConfigError
from dynembed_infra import nag
from dynembed_infra.bedrock import BedrockModels
from dynembed_infra.context import DeploymentConfig
from dynembed_infra.data import Data
from dynembed_infra.functions import RETENTION, DynembedFunction, FunctionFactory
from dynembed_infra.paths import REBUILD_ASL
from dynembed_infra.search import ChunkIndex, IndexAccess

FUNCTION_ARN_PLACEHOLDER = "WorkflowFunctionArn"
REPORTS_PREFIX = "reports"
"""Evaluation reports live under ``s3://<reports bucket>/reports/<generation>.md``."""
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def check_definition(path: Path) -> None:
    """A readable ASL document whose only placeholder is the workflow function's ARN."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"rebuild state machine definition {path}: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"rebuild state machine definition {path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or "StartAt" not in document or "States" not in document:
        raise ConfigError(f"rebuild state machine definition {path} has no StartAt/States")
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - {FUNCTION_ARN_PLACEHOLDER})
    if unknown:
        raise ConfigError(
            f"rebuild state machine definition {path} uses placeholders the stack does not fill: "
            + ", ".join("${" + name + "}" for name in unknown)
            + f" (only ${{{FUNCTION_ARN_PLACEHOLDER}}} is substituted)"
        )


class Workflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        data: Data,
        index: ChunkIndex,
        bedrock: BedrockModels,
        jobs_queue: sqs.IQueue,
        key: kms.IKey,
        config: DeploymentConfig,
        tuning: Tuning = TUNING,
        definition_path: Path = REBUILD_ASL,
    ) -> None:
        super().__init__(scope, construct_id)
        check_definition(definition_path)
        self.function = functions.create(
            self, "workflow", timeout_s=tuning.workflow_timeout_s, memory_mb=1024
        )
        fn = self.function
        # register/promote/retire generations; backfill (scan source, reconcile into the new
        # generation); evaluate (embed golden queries); create indices and move the alias.
        data.registry_table.grant_read_write_data(fn.role)
        data.source_table.grant_read_data(fn.role)
        data.ledger_table.grant_read_write_data(fn.role)
        data.embedding_cache_table.grant_read_write_data(fn.role)
        data.held_jobs_table.grant_read_data(fn.role)  # catch-up: held (batched) docs do not block it
        jobs_queue.grant_send_messages(fn.role)
        index.grant(fn, IndexAccess.ADMIN)
        bedrock.grant_invoke(fn)
        grant_golden_sets(self, fn, config)
        self.reports_bucket = self._reports_bucket(fn, key)

        self.log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{NAMES.rebuild_state_machine}",
            retention=RETENTION[config.log_retention_days],
            encryption_key=key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="dynembed rebuild state machine: invokes the workflow function only",
        )
        # Unqualified ARN only: the definition invokes the function, never a version or alias.
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[fn.function.function_arn])
        )
        self._grant_child_executions()
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=NAMES.rebuild_state_machine,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(definition_path)),
            definition_substitutions={FUNCTION_ARN_PLACEHOLDER: fn.function.function_arn},
            role=self.role,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        nag.acknowledge(
            self.role,
            "IAM5",
            "Step Functions log delivery (logs:CreateLogDelivery, PutResourcePolicy, ...) and X-Ray "
            "(xray:PutTraceSegments, GetSamplingRules, ...) support no resource-level permissions",
            "Resource::*",
        )

    def _grant_child_executions(self) -> None:
        """The Backfill is a Distributed Map: the state machine starts its own child executions
        (ARNs from the fixed name, so the role does not depend on the machine it serves)."""
        stack = Stack.of(self)
        name = NAMES.rebuild_state_machine
        machine = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["states:StartExecution"], resources=[machine]))
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"], resources=[executions]
            )
        )
        nag.acknowledge(
            self.role,
            "IAM5",
            "the Distributed Map's child executions of this one state machine: their ids are made at run time",
            nag.wildcard_resource(self, executions),
        )

    @property
    def reports_location(self) -> str:
        """``DYNEMBED_REPORTS_DIR``: where the Evaluate step writes, and the registry points."""
        return f"s3://{self.reports_bucket.bucket_name}/{REPORTS_PREFIX}"

    def _reports_bucket(self, fn: DynembedFunction, key: kms.IKey) -> s3.Bucket:
        """Evaluation reports, kept as long as the registry that names them (the function's /tmp
        would vanish with its sandbox). The workflow may only add reports, never read or delete."""
        bucket = s3.Bucket(
            self,
            "ReportsBucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
        )
        objects = bucket.arn_for_objects(f"{REPORTS_PREFIX}/*")
        fn.role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[objects]))
        key.grant(fn.role, "kms:GenerateDataKey")
        nag.acknowledge(
            fn.role,
            "IAM5",
            f"evaluation reports are written (s3:PutObject only) under the reports bucket's {REPORTS_PREFIX}/ prefix, one object per generation",
            nag.wildcard_resource(self, objects),
        )
        nag.acknowledge(
            bucket,
            "S1",
            "holds evaluation reports written by the workflow role only; writes are in CloudTrail "
            "and the registry names each report, so server access logs would add a bucket to no end",
        )
        return bucket


def grant_golden_sets(scope: Construct, fn: DynembedFunction, config: DeploymentConfig) -> None:
    """Read-only access to the S3 prefixes golden sets may come from (context): the workflow's
    Evaluate step and the canary read the same golden sets."""
    stack = Stack.of(scope)
    for bucket, prefix in config.eval_read_locations:
        objects = stack.format_arn(
            service="s3",
            region="",
            account="",
            resource=bucket,
            resource_name=f"{prefix}*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        fn.role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects]))
        nag.acknowledge(
            fn.role,
            "IAM5",
            f"golden sets are read (s3:GetObject only) from the configured prefix s3://{bucket}/{prefix}",
            nag.wildcard_resource(scope, objects),
        )
