"""Every dynembed Lambda is built the same way, here: one runtime, one layer, one env contract.

A function gets its own role (no AWS-managed policies: log writing is granted on its own log
group only), its own encrypted log group with a retention, X-Ray tracing, the Powertools
variables, and *every* deployed ``dynembed.core.config.Settings`` field as a ``DYNEMBED_*``
variable (the source schema included). Settings are applied once all resources exist
(``FunctionFactory.apply_settings``), from one mapping: a field the functions require in Lambda
(``Settings.REQUIRED_IN_LAMBDA``) without a cloud value fails the synth, as it would fail every
cold start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import Annotations, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from dynembed.core.config import FUNCTIONS, NAMES, Settings
from dynembed.core.errors import ConfigError
from dynembed.core.schema import SourceSchema
from dynembed_infra import nag
from dynembed_infra.layer import ARCHITECTURE, RUNTIME
from dynembed_infra.paths import ASSET_EXCLUDES, FUNCTIONS_DIR

HANDLER = "handler.handler"
# Lambda caps the whole environment at 4 KB; the schema is the only large value.
MAX_SCHEMA_ENV_BYTES = 2500

RETENTION: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
}

# Why a wildcard in a function role is acceptable, per action. A wildcard whose actions are not
# all listed here is not acknowledged, so cdk-nag fails the synth until someone decides.
_KMS_VARIANTS = "names the variants of one KMS API and is scoped to the single dynembed key (tables, queues)"
WILDCARD_ACTION_REASONS = {
    "kms:GenerateDataKey*": "kms:GenerateDataKey* " + _KMS_VARIANTS,
    "kms:ReEncrypt*": "kms:ReEncrypt* " + _KMS_VARIANTS,
}
RESOURCE_STAR_REASONS = {
    "xray:PutTraceSegments": "X-Ray tracing (xray:PutTraceSegments/PutTelemetryRecords)",
    "xray:PutTelemetryRecords": "X-Ray tracing (xray:PutTraceSegments/PutTelemetryRecords)",
    "dynamodb:ListStreams": "the stream event source (dynamodb:ListStreams)",
    **{
        f"ec2:{action}": "VPC access (ec2 network-interface actions)"
        for action in (
            "CreateNetworkInterface",
            "DescribeNetworkInterfaces",
            "DeleteNetworkInterface",
            "AssignPrivateIpAddresses",
            "UnassignPrivateIpAddresses",
        )
    },
}


@dataclass(frozen=True)
class NetworkPlacement:
    """Where functions that reach a VPC-only OpenSearch domain run."""

    vpc: ec2.IVpc
    subnets: Sequence[ec2.ISubnet]
    """One per availability zone; the domain uses the first ``availabilityZones`` of them."""
    function_security_group: ec2.ISecurityGroup


@dataclass
class FunctionSettings:
    """What every function shares; held by the factory."""

    layer: lambda_.ILayerVersion
    key: kms.IKey
    log_retention_days: int
    log_level: str
    source_schema: SourceSchema
    placement: NetworkPlacement | None = None
    created: list[DynembedFunction] = field(default_factory=list)


class DynembedFunction(Construct):
    """One handler folder ``functions/<name>/`` as a Lambda function with its role and logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        shared: FunctionSettings,
        timeout_s: int,
        memory_mb: int,
        reserved_concurrency: int | None = None,
        in_vpc: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        if name not in FUNCTIONS:
            raise ConfigError(
                f"function {name!r} is not in dynembed.core.config.FUNCTIONS ({', '.join(FUNCTIONS)})"
            )
        code_dir = FUNCTIONS_DIR / name
        if not (code_dir / "handler.py").is_file():
            raise ConfigError(f"function {name!r}: {code_dir / 'handler.py'} does not exist")
        self.name = name
        self.function_name = f"{NAMES.service}-{name}"
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=f"/aws/lambda/{self.function_name}",
            retention=RETENTION[shared.log_retention_days],
            encryption_key=shared.key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{self.function_name}: {FUNCTIONS[name]}",
        )
        self.log_group.grant_write(self.role)
        placement = shared.placement if in_vpc else None
        if placement:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DeleteNetworkInterface",
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                    resources=["*"],
                )
            )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            description=FUNCTIONS[name],
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=lambda_.Code.from_asset(str(code_dir), exclude=ASSET_EXCLUDES),
            handler=HANDLER,
            layers=[shared.layer],
            role=self.role,
            timeout=Duration.seconds(timeout_s),
            memory_size=memory_mb,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            environment=_base_environment(shared),
            vpc=placement.vpc if placement else None,
            vpc_subnets=ec2.SubnetSelection(subnets=list(placement.subnets)) if placement else None,
            security_groups=[placement.function_security_group] if placement else None,
        )

    def acknowledge_findings(self) -> None:
        """Acknowledge the role's wildcards that have a known reason (call once grants are done).

        Reads the role's final policy, so an acknowledgement exists only where a finding does,
        and carries the reason of the statements that cause it.
        """
        policy = self.role.node.try_find_child("DefaultPolicy")
        if not isinstance(policy, iam.Policy):
            return
        document = Stack.of(self).resolve(policy.document.to_json())
        star_reasons: dict[str, None] = {}
        star_unexplained = False
        for statement in document.get("Statement", []):
            if statement.get("Effect") != "Allow":
                continue
            actions = _as_list(statement.get("Action"))
            for action in actions:
                if "*" in action and action in WILDCARD_ACTION_REASONS:
                    nag.acknowledge(self.role, "IAM5", WILDCARD_ACTION_REASONS[action], f"Action::{action}")
            if "*" in _as_list(statement.get("Resource")):
                for action in actions:
                    if action in RESOURCE_STAR_REASONS:
                        star_reasons[RESOURCE_STAR_REASONS[action]] = None
                    else:
                        star_unexplained = True
        if star_reasons and not star_unexplained:
            nag.acknowledge(
                self.role,
                "IAM5",
                "; ".join(star_reasons) + ": these actions support no resource-level permissions",
                "Resource::*",
            )


def _base_environment(shared: FunctionSettings) -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": NAMES.service,
        "POWERTOOLS_METRICS_NAMESPACE": NAMES.metrics_namespace,
        # Responses can hold document text; traces must not copy it out of the access filter.
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        "LOG_LEVEL": shared.log_level,
    }


def schema_env_value(schema: SourceSchema) -> str:
    """``DYNEMBED_SOURCE_SCHEMA``: the schema as JSON, small enough for Lambda's environment."""
    schema_json = schema.to_env_value()
    if len(schema_json.encode()) > MAX_SCHEMA_ENV_BYTES:
        raise ConfigError(
            f"the source schema is {len(schema_json.encode())} bytes as JSON; Lambda allows 4 KB of "
            f"environment in total, so keep it under {MAX_SCHEMA_ENV_BYTES} bytes"
        )
    return schema_json


class FunctionFactory:
    """Creates functions with the shared settings and remembers them for the final env pass."""

    def __init__(self, shared: FunctionSettings) -> None:
        self.shared = shared

    @property
    def functions(self) -> list[DynembedFunction]:
        return list(self.shared.created)

    def create(
        self,
        scope: Construct,
        name: str,
        *,
        timeout_s: int,
        memory_mb: int,
        reserved_concurrency: int | None = None,
        in_vpc: bool = True,
    ) -> DynembedFunction:
        construct_id = name.capitalize() + "Function"
        fn = DynembedFunction(
            scope,
            construct_id,
            name=name,
            shared=self.shared,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            reserved_concurrency=reserved_concurrency,
            in_vpc=in_vpc,
        )
        self.shared.created.append(fn)
        return fn

    def apply_settings(self, scope: Construct, values: Mapping[str, str]) -> list[str]:
        """Set ``DYNEMBED_<FIELD>`` on every function for every deployed ``Settings`` field
        (``source_schema`` comes from the shared settings unless given).

        A required field with no cloud value fails the synth, naming it; an optional one falls
        back to its default, with a synth warning naming it. The names of those optional fields
        are returned (tests insist there are none).
        """
        fields = Settings.deployed_fields()
        values = {"source_schema": schema_env_value(self.shared.source_schema), **values}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"values given for fields Settings does not deploy: {', '.join(unknown)}")
        missing = sorted(Settings.REQUIRED_IN_LAMBDA - set(values))
        if missing:
            raise ConfigError(
                "the stack gives no value for settings every function requires: "
                + ", ".join(Settings.variable(name) for name in missing)
            )
        unmapped = [name for name in fields if name not in values]
        environment = {Settings.variable(name): values[name] for name in fields if name in values}
        for name in unmapped:
            default = Settings.model_fields[name].default
            environment[Settings.variable(name)] = _env_text(default)
            Annotations.of(scope).add_warning_v2(
                f"dynembed:unmappedSetting:{name}",
                f"Settings.{name} has no cloud value in the stack; functions get its local default {default!r}",
            )
        for fn in self.shared.created:
            for key, value in environment.items():
                fn.function.add_environment(key, value)
        return unmapped


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _env_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
