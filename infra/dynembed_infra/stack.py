"""The dynembed stack: composes the constructs, then applies what needs all of them at once.

The stack is environment-agnostic (no account or region): it synthesises on a machine with no
AWS credentials, and the same template deploys to any account and region.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Aws, CfnOutput, Stack, Tags, Validations
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from dynembed.core.config import NAMES, TUNING, Tuning
from dynembed_infra.api import SearchApi
from dynembed_infra.audit import Audit, Schedules
from dynembed_infra.bedrock import BedrockModels
from dynembed_infra.context import DeploymentConfig
from dynembed_infra.data import Data
from dynembed_infra.encryption import DataKey
from dynembed_infra.functions import FunctionFactory, FunctionSettings, NetworkPlacement
from dynembed_infra.ingest import Ingest
from dynembed_infra.layer import CoreLayer
from dynembed_infra.live import LiveTraffic
from dynembed_infra.monitoring import Monitoring
from dynembed_infra.quality import QualityMonitors
from dynembed_infra.search import Search
from dynembed_infra.workflow import Workflow


class DynembedStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        tuning: Tuning = TUNING,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        Tags.of(self).add("project", NAMES.service)

        self.key = DataKey(self, "Encryption").key
        self.data = Data(self, "Data", key=self.key, config=config)
        placement = self._network_placement()
        self.functions = FunctionFactory(
            FunctionSettings(
                layer=CoreLayer(self, "CoreLayer").layer,
                key=self.key,
                log_retention_days=config.log_retention_days,
                log_level=config.log_level,
                source_schema=config.source_schema,
                placement=placement,
            )
        )
        bedrock = BedrockModels(self, config.bedrock_models)

        self.search = Search(
            self,
            "Search",
            functions=self.functions,
            data=self.data,
            bedrock=bedrock,
            key=self.key,
            config=config,
            placement=placement,
        )
        index = self.search.index
        self.search_api = SearchApi(
            self, "SearchApi", search=self.search.function, key=self.key, config=config
        )

        self.ingest = Ingest(
            self,
            "Ingest",
            functions=self.functions,
            data=self.data,
            index=index,
            bedrock=bedrock,
            key=self.key,
            tuning=tuning,
        )
        self.workflow = Workflow(
            self,
            "Workflow",
            functions=self.functions,
            data=self.data,
            index=index,
            bedrock=bedrock,
            jobs_queue=self.ingest.jobs_queue,
            key=self.key,
            config=config,
            tuning=tuning,
        )
        self.live = LiveTraffic(
            self,
            "LiveTraffic",
            functions=self.functions,
            data=self.data,
            index=index,
            bedrock=bedrock,
            search=self.search.function,
            workflow=self.workflow.function,
            key=self.key,
            tuning=tuning,
        )
        self.audit = Audit(
            self,
            "Audit",
            functions=self.functions,
            data=self.data,
            index=index,
            jobs_queue=self.ingest.jobs_queue,
        )
        self.schedules = Schedules(
            self,
            "Schedules",
            audit=self.audit.function,
            drain=self.ingest.drain,
            audit_rate_minutes=config.audit_rate_minutes,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            key=self.key,
            jobs_queue=self.ingest.jobs_queue,
            jobs_dlq=self.ingest.jobs_dlq,
            stream_failures_queue=self.ingest.stream_failures_queue,
            classify=self.ingest.classify,
            functions=self.functions.functions,
            state_machine=self.workflow.state_machine,
            audit_rate_minutes=config.audit_rate_minutes,
            alarm_email=config.alarm_email,
        )
        self.quality = QualityMonitors(
            self,
            "Quality",
            functions=self.functions,
            data=self.data,
            index=index,
            bedrock=bedrock,
            topic=self.monitoring.topic,
            config=config,
            tuning=tuning,
        )
        self.quality.add_to_dashboard(self.monitoring.dashboard)

        # Needs every resource: the Settings values, the domain policy, the per-role findings.
        self.unmapped_settings = self.functions.apply_settings(self, self._settings_values(tuning))
        self.search.apply_access_policy()
        for fn in self.functions.functions:
            fn.acknowledge_findings()
        self._outputs()

    def _network_placement(self) -> NetworkPlacement | None:
        vpc_config = self.config.vpc
        if vpc_config is None:
            return None
        vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=vpc_config.vpc_id,
            availability_zones=list(vpc_config.availability_zones),
            private_subnet_ids=list(vpc_config.subnet_ids),
        )
        Validations.of(vpc).acknowledge(
            Acknowledgment(
                id="Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId",
                reason="the stack places ENIs and the domain in these subnets; it never reads or adds routes",
            )
        )
        security_group = ec2.SecurityGroup(
            self,
            "FunctionSecurityGroup",
            vpc=vpc,
            description="dynembed functions: outbound to OpenSearch, AWS APIs and Bedrock",
            allow_all_outbound=True,
        )
        return NetworkPlacement(vpc=vpc, subnets=vpc.private_subnets, function_security_group=security_group)

    def _settings_values(self, tuning: Tuning) -> dict[str, str]:
        """The cloud value of each ``dynembed.core.config.Settings`` field."""
        data, ingest = self.data, self.ingest
        return {
            "source_table": data.source_table.table_name,
            "ledger_table": data.ledger_table.table_name,
            "registry_table": data.registry_table.table_name,
            "embedding_cache_table": data.embedding_cache_table.table_name,
            "held_jobs_table": data.held_jobs_table.table_name,
            "jobs_queue_url": ingest.jobs_queue.queue_url,
            "stream_failures_queue_url": ingest.stream_failures_queue.queue_url,
            "jobs_dlq_url": ingest.jobs_dlq.queue_url,
            "max_receive_count": str(tuning.sqs_max_receive_count),
            "index_alias": NAMES.index_alias,
            "index_prefix": NAMES.index_prefix,
            "opensearch_endpoint": self.search.index.endpoint,
            "opensearch_auth": "sigv4",
            "knn_mode": "native",
            "region": Aws.REGION,
            "eval_dir": self.config.eval_dir,
            "prices": "",  # the shipped, dated price table (dynembed.cost.prices)
            "reports_dir": self.workflow.reports_location,
            **self._identity_settings(),
            **self._live_query_settings(),
        }

    def _live_query_settings(self) -> dict[str, str]:
        """Sampling of live searches and shadow searches (context dynembed:liveQueries)."""
        live = self.config.live_queries
        return {
            "query_samples_table": self.data.query_samples_table.table_name,
            "query_sample_rate": str(live.sample_rate),
            "query_keep_text": "true" if live.keep_query_text else "false",
            "query_sample_ttl_days": str(live.retention_days),
            "shadow_queue_url": self.live.shadow_queue.queue_url,
            "shadow_sample_rate": str(live.shadow_rate),
            # The search function re-reads generations this often: a new candidate is shadowed
            # within 30 s, at one registry scan per warm sandbox per 30 s.
            "query_signals_cache_s": "30",
        }

    def _identity_settings(self) -> dict[str, str]:
        """How the search function maps the API's verified identity (context dynembed:searchApi)."""
        api = self.config.search_api
        return {
            "identity_user_claim": api.claims.user,
            "identity_groups_claim": api.claims.groups,
            "identity_tenant_claim": api.claims.tenant,
            "identity_user_prefix": api.claims.user_prefix,
            "identity_group_prefix": api.claims.group_prefix,
            "identity_iam_callers": api.iam_callers_json,
        }

    def _outputs(self) -> None:
        outputs = {
            "SourceTableName": self.data.source_table.table_name,
            "JobsQueueUrl": self.ingest.jobs_queue.queue_url,
            "JobsDlqUrl": self.ingest.jobs_dlq.queue_url,
            "StreamFailuresQueueUrl": self.ingest.stream_failures_queue.queue_url,
            "ShadowQueueUrl": self.live.shadow_queue.queue_url,
            "RebuildStateMachineArn": self.workflow.state_machine.state_machine_arn,
            "OpenSearchEndpoint": self.search.index.endpoint,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
            "SearchApiUrl": self.search_api.url,
        }
        if self.search.admin_role is not None:
            outputs["OpenSearchAdminRoleArn"] = self.search.admin_role.role_arn
        for fn in self.functions.functions:
            outputs[fn.name.capitalize() + "RoleArn"] = fn.role.role_arn
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
