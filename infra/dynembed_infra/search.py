"""The chunk index (an OpenSearch Service domain, or an existing one) and the search function.

Access to the domain is checked twice. IAM: each function role may call only the HTTP verbs
and paths its ``IndexAccess`` allows (the domain's resource policy grants each role exactly the
same). Inside OpenSearch, fine-grained access control decides which indices and operations each
role may use: the master user is a dedicated IAM role (``AdminRole``) that operators assume
once to map the function roles to OpenSearch roles (docs/operations.md, "Mapping the function
roles").

``_search`` is a POST, so the verb alone cannot tell a read from a write. The readers (search,
audit) therefore get POST only on the read APIs of dynembed's indices
(``domain/<name>/dynembed-chunks*/_search`` and the like), and an explicit deny on the
single-document write APIs, whose ids could otherwise end in ``/_search`` and match that
pattern (``POST <index>/_doc/_search`` indexes a document). Only classify, sync and the
workflow get write verbs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from constructs import Construct

from dynembed.core.config import NAMES
from dynembed_infra import nag
from dynembed_infra.bedrock import BedrockModels
from dynembed_infra.context import DeploymentConfig
from dynembed_infra.data import Data
from dynembed_infra.functions import RETENTION, DynembedFunction, FunctionFactory, NetworkPlacement

SEARCH_TIMEOUT_S = 30
"""An interactive query: if it takes longer, the caller has given up anyway."""
DOMAIN_NAME = NAMES.service
"""Fixed, so the domain ARN is known before the domain exists (its access policy needs it)."""


class IndexAccess(Enum):
    """What a function may do on the chunk index (see ``index_statements``)."""

    READ = "read"
    """search: GET/HEAD, and POST to the read APIs (``_search``, ``_msearch``, ``_count``, ``_mget``)."""
    SCAN = "scan"
    """audit: READ, plus ``_refresh`` and the scroll API (POST; DELETE releases its context)."""
    WRITE = "write"
    """classify, sync: documents (``_bulk``), every verb but PATCH."""
    ADMIN = "admin"
    """workflow, the admin role: indices and aliases too."""


READ_VERBS = ("es:ESHttpGet", "es:ESHttpHead")
WRITE_VERBS = (*READ_VERBS, "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete")
ADMIN_VERBS = (*WRITE_VERBS, "es:ESHttpPatch")
READ_APIS = ("_search", "_msearch", "_count", "_mget")
"""POST bodies that only read."""
SINGLE_DOC_WRITE_APIS = ("_doc", "_create", "_update")
"""``<index>/<api>/<id>``: with an id such as ``_search`` they would match a read pattern."""


@dataclass(frozen=True)
class IndexStatement:
    effect: iam.Effect
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    reason: str = ""
    """Why a wildcard in ``resources`` is acceptable (Allow statements only)."""

    def policy_statement(self, principals: list[iam.IPrincipal] | None = None) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            effect=self.effect,
            actions=list(self.actions),
            resources=list(self.resources),
            principals=principals,
        )


def index_statements(access: IndexAccess, domain_arn: str) -> list[IndexStatement]:
    """The IAM statements of one access level on the domain (identity and resource policy alike)."""
    paths = f"{domain_arn}/*"
    if access is IndexAccess.ADMIN:
        return [IndexStatement(iam.Effect.ALLOW, ADMIN_VERBS, (paths,), _PATHS_REASON)]
    if access is IndexAccess.WRITE:
        return [IndexStatement(iam.Effect.ALLOW, WRITE_VERBS, (paths,), _PATHS_REASON)]
    indices = [f"{domain_arn}/{name}*" for name in dict.fromkeys((NAMES.index_alias, NAMES.index_prefix))]
    statements = [
        IndexStatement(iam.Effect.ALLOW, READ_VERBS, (paths,), _READ_PATHS_REASON),
        IndexStatement(
            iam.Effect.ALLOW,
            ("es:ESHttpPost",),
            tuple(f"{index}/{api}" for index in indices for api in READ_APIS),
            _READ_APIS_REASON,
        ),
    ]
    if access is IndexAccess.SCAN:
        scroll = f"{domain_arn}/_search/scroll"
        statements += [
            IndexStatement(
                iam.Effect.ALLOW,
                ("es:ESHttpPost",),
                (*(f"{index}/_refresh" for index in indices), scroll),
                _REFRESH_REASON,
            ),
            # helpers.scan clears its scroll context when done; DELETE on this one path only.
            IndexStatement(iam.Effect.ALLOW, ("es:ESHttpDelete",), (scroll,)),
        ]
    statements.append(
        IndexStatement(
            iam.Effect.DENY,
            ADMIN_VERBS[2:],
            tuple(f"{domain_arn}/*/{api}/*" for api in SINGLE_DOC_WRITE_APIS),
        )
    )
    return statements


_PATHS_REASON = (
    "OpenSearch HTTP permissions are granted per path of the one dynembed domain "
    "(domain/<name>/*: index, _bulk, _search and _aliases paths); fine-grained access "
    "control narrows them to dynembed's indices"
)
_READ_PATHS_REASON = (
    "GET/HEAD only (reads: alias lookups, documents) on paths of the one dynembed domain; "
    "fine-grained access control narrows them to dynembed's indices"
)
_READ_APIS_REASON = (
    "POST only to the read APIs (_search, _msearch, _count, _mget) of dynembed's indices, whose "
    "names end in a generation id known only at run time (dynembed-chunks-<generation>); "
    "single-document writes that could match are explicitly denied"
)
_REFRESH_REASON = (
    "the audit refreshes a generation's index (dynembed-chunks-<generation>, named at run time) "
    "before scanning it; _refresh writes no document"
)


class ChunkIndex:
    """Endpoint and grants for the chunk index, whichever domain serves it."""

    def __init__(self, scope: Construct, endpoint: str, domain_arn: str) -> None:
        self._scope = scope
        self.endpoint = endpoint
        self.domain_arn = domain_arn
        self.paths_arn = f"{domain_arn}/*"
        self.grants: list[tuple[iam.IRole, IndexAccess]] = []

    @property
    def grantees(self) -> list[iam.IRole]:
        return [role for role, _ in self.grants]

    def grant(self, fn: DynembedFunction, access: IndexAccess) -> None:
        self.grant_role(fn.role, access)

    def grant_role(self, role: iam.IRole, access: IndexAccess, reason: str | None = None) -> None:
        """Grant ``access``; ``reason`` replaces the wildcard acknowledgements' default reason."""
        for statement in index_statements(access, self.domain_arn):
            role.add_to_principal_policy(statement.policy_statement())
            if statement.effect is not iam.Effect.ALLOW:
                continue
            for resource in statement.resources:
                if "*" in resource:
                    nag.acknowledge(
                        role, "IAM5", reason or statement.reason, nag.wildcard_resource(self._scope, resource)
                    )
        self.grants.append((role, access))


class Search(Construct):
    """Owns the domain (unless attached), its log groups, the admin role and the search function."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        data: Data,
        bedrock: BedrockModels,
        key: kms.IKey,
        config: DeploymentConfig,
        placement: NetworkPlacement | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.domain: opensearch.Domain | None = None
        self.admin_role: iam.Role | None = None
        if config.existing_open_search_endpoint and config.existing_open_search_domain_arn:
            self.index = ChunkIndex(
                self,
                config.existing_open_search_endpoint.rstrip("/"),
                config.existing_open_search_domain_arn,
            )
        else:
            domain_arn = stack.format_arn(
                service="es",
                resource="domain",
                resource_name=DOMAIN_NAME,
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            )
            self.admin_role = iam.Role(
                self,
                "AdminRole",
                assumed_by=iam.AccountRootPrincipal(),
                description="Fine-grained access control master user of the dynembed domain; "
                "assume it to map the function roles to OpenSearch roles",
            )
            self.domain = self._domain(key, config, placement, self.admin_role)
            self.index = ChunkIndex(self, f"https://{self.domain.domain_endpoint}", domain_arn)
            self.index.grant_role(
                self.admin_role,
                IndexAccess.ADMIN,
                reason="the domain's master user needs every path of the one dynembed domain "
                "(security plugin APIs)",
            )
        # search: the active generation (registry), the query embedding, the k-NN query.
        self.function = functions.create(self, "search", timeout_s=SEARCH_TIMEOUT_S, memory_mb=1024)
        data.registry_table.grant_read_data(self.function.role)
        self.index.grant(self.function, IndexAccess.READ)  # read-only: see index_statements
        bedrock.grant_invoke(self.function)

    def _domain(
        self,
        key: kms.IKey,
        config: DeploymentConfig,
        placement: NetworkPlacement | None,
        admin_role: iam.IRole,
    ) -> opensearch.Domain:
        sizing = config.open_search
        log_groups = {
            kind: logs.LogGroup(
                self,
                f"{kind}Logs",
                log_group_name=f"/aws/opensearch/{DOMAIN_NAME}/{kind.lower()}",
                retention=RETENTION[config.log_retention_days],
                encryption_key=key,
                removal_policy=RemovalPolicy.DESTROY,
            )
            for kind in ("SearchSlow", "IndexSlow", "Application", "Audit")
        }
        # One explicit resource policy instead of CDK's custom-resource Lambda that writes one.
        logs_policy = logs.ResourcePolicy(
            self,
            "LogsPolicy",
            resource_policy_name=f"{DOMAIN_NAME}-opensearch-logs",
            policy_statements=[
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("es.amazonaws.com")],
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[group.log_group_arn for group in log_groups.values()],
                    conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
                )
            ],
        )
        zone_awareness = sizing.availability_zones > 1
        domain_security_group: ec2.SecurityGroup | None = None
        if placement:
            domain_security_group = ec2.SecurityGroup(
                self,
                "DomainSecurityGroup",
                vpc=placement.vpc,
                description="dynembed OpenSearch domain: HTTPS from dynembed functions only",
                allow_all_outbound=False,
            )
            domain_security_group.add_ingress_rule(
                placement.function_security_group, ec2.Port.tcp(443), "HTTPS from dynembed functions"
            )
        domain = opensearch.Domain(
            self,
            "Domain",
            domain_name=DOMAIN_NAME,
            version=opensearch.EngineVersion.open_search(sizing.engine_version),
            capacity=opensearch.CapacityConfig(
                data_nodes=sizing.data_nodes,
                data_node_instance_type=sizing.data_node_instance_type,
                master_nodes=sizing.dedicated_master_nodes or None,
                master_node_instance_type=(
                    sizing.dedicated_master_instance_type if sizing.dedicated_master_nodes else None
                ),
                multi_az_with_standby_enabled=False,
            ),
            ebs=opensearch.EbsOptions(
                enabled=True,
                volume_size=sizing.volume_size_gib,
                volume_type=ec2.EbsDeviceVolumeType.GP3,
            ),
            zone_awareness=opensearch.ZoneAwarenessConfig(
                enabled=zone_awareness,
                availability_zone_count=sizing.availability_zones if zone_awareness else None,
            ),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True, kms_key=key),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2_PFS,
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(
                master_user_arn=admin_role.role_arn
            ),
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True,
                slow_search_log_group=log_groups["SearchSlow"],
                slow_index_log_enabled=True,
                slow_index_log_group=log_groups["IndexSlow"],
                app_log_enabled=True,
                app_log_group=log_groups["Application"],
                audit_log_enabled=True,
                audit_log_group=log_groups["Audit"],
            ),
            suppress_logs_resource_policy=True,
            vpc=placement.vpc if placement else None,
            vpc_subnets=(
                [ec2.SubnetSelection(subnets=list(placement.subnets)[: max(1, sizing.availability_zones)])]
                if placement
                else None
            ),
            security_groups=[domain_security_group] if domain_security_group else None,
            removal_policy=RemovalPolicy.RETAIN,
        )
        domain.node.add_dependency(logs_policy)
        self._acknowledge_domain_findings(domain, config, placement)
        return domain

    def _acknowledge_domain_findings(
        self, domain: opensearch.Domain, config: DeploymentConfig, placement: NetworkPlacement | None
    ) -> None:
        nag.acknowledge(
            domain,
            "OS3",
            "access is by SigV4-signed requests from named IAM roles (resource policy + fine-grained "
            "access control); Lambda has no fixed source IPs to allowlist",
        )
        if not placement:
            nag.acknowledge(
                domain,
                "OS1",
                "no VPC was given (context dynembed:vpc): the public endpoint accepts only signed "
                "requests from the roles named in the domain policy, over TLS 1.2+",
            )
        if not config.open_search.dedicated_master_nodes:
            nag.acknowledge(
                domain,
                "OS4",
                "small domain (a few data nodes) where dedicated masters would double the cost; "
                "set dynembed:openSearch.dedicatedMasterNodes to 3 for larger clusters",
            )
        if config.open_search.availability_zones < 2:
            nag.acknowledge(
                domain,
                "OS7",
                "zone awareness turned off by context (dynembed:openSearch.availabilityZones = 1), "
                "a single-AZ trial domain; the index can be rebuilt from the source table",
            )

    def apply_access_policy(self) -> None:
        """The domain's resource policy: each granted role exactly its IAM statements."""
        if self.domain is None or self.admin_role is None:
            return
        by_access: dict[IndexAccess, list[iam.IPrincipal]] = {}
        seen: set[tuple[str, IndexAccess]] = set()
        for role, access in self.index.grants:
            if (role.node.path, access) not in seen:
                seen.add((role.node.path, access))
                by_access.setdefault(access, []).append(iam.ArnPrincipal(role.role_arn))
        document = iam.PolicyDocument(
            statements=[
                statement.policy_statement(principals)
                for access, principals in by_access.items()
                for statement in index_statements(access, self.index.domain_arn)
            ]
        )
        cfn_domain = self.domain.node.default_child
        assert isinstance(cfn_domain, opensearch.CfnDomain)
        cfn_domain.access_policies = document.to_json()
