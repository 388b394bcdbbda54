"""Template assertions on the synthesised dynembed stack (default deployment unless named)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match

from dynembed.adapters.dynamodb.cache import EmbeddingCacheModel
from dynembed.adapters.dynamodb.held_jobs import HeldJobModel
from dynembed.adapters.dynamodb.ledger import LedgerModel
from dynembed.adapters.dynamodb.registry import RegistryModel
from dynembed.core.config import KEYS, METRICS, NAMES, THRESHOLDS, TUNING, Settings, load_settings
from dynembed.core.schema import SCHEMA_ENV, SourceSchema
from dynembed_infra import nag
from dynembed_infra.layer import RUNTIME
from dynembed_infra.nag import flatten_reference
from tests.infra.conftest import (
    EXISTING_DOMAIN_ARN,
    EXISTING_ENDPOINT,
    EXISTING_STREAM_ARN,
    EXISTING_TABLE,
    EXISTING_TABLE_KEY_ARN,
    REPO_ROOT,
    VPC,
    Synth,
)

pytestmark = pytest.mark.infra

ALL_FUNCTIONS = ("classify", "sync", "search", "audit", "drain", "workflow", "shadow")
MONITOR_FUNCTIONS = ("canary", "sentinel")
"""The quality monitors' functions (tests/infra/test_quality.py); their Errors alarms are here."""
WRITE_ACTIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return set(action) if isinstance(action, list) else {action}


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def _role_actions(synth: Synth, name: str, effect: str | None = None) -> set[str]:
    statements = synth.statements_of_role(synth.role_id_of_function(name))
    return set().union(*(_actions(s) for s in statements if effect in (None, s["Effect"])))


# ---- data ------------------------------------------------------------------------------------


def test_created_source_table_streams_new_and_old_images_keyed_by_the_schema_id(synth: Synth) -> None:
    # GIVEN the default deployment (no existing table)  WHEN synthesised
    # THEN the source table streams both images and is keyed by the schema's id attribute
    synth.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": NAMES.source_table,
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            "KeySchema": [{"AttributeName": SourceSchema().id_attribute, "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )


def test_every_table_has_point_in_time_recovery_and_customer_key_encryption(synth: Synth) -> None:
    # GIVEN the synthesised tables
    tables = synth.of_type("AWS::DynamoDB::Table")
    key_id = synth.logical_id(synth.stack.key)
    # THEN all six exist, each with PITR and SSE under the stack's KMS key
    assert {t["Properties"]["TableName"] for t in tables.values()} == {
        NAMES.source_table,
        NAMES.ledger_table,
        NAMES.registry_table,
        NAMES.embedding_cache_table,
        NAMES.held_jobs_table,
        NAMES.query_samples_table,
    }
    for table in tables.values():
        props = table["Properties"]
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["SSESpecification"]["SSEType"] == "KMS"
        assert props["SSESpecification"]["KMSMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        # AND every table is kept on stack deletion but the query samples (they expire anyway)
        expired = props["TableName"] == NAMES.query_samples_table
        assert table["DeletionPolicy"] == ("Delete" if expired else "Retain")


@pytest.mark.parametrize(
    ("table_name", "hash_key", "range_key", "model"),
    [
        (NAMES.ledger_table, KEYS.ledger_hash, KEYS.ledger_range, LedgerModel),
        (NAMES.registry_table, KEYS.registry_hash, None, RegistryModel),
        (NAMES.embedding_cache_table, KEYS.cache_hash, None, EmbeddingCacheModel),
        (NAMES.held_jobs_table, KEYS.held_jobs_hash, None, HeldJobModel),
    ],
)
def test_owned_tables_use_the_key_schema_the_adapters_use(
    synth: Synth, table_name: str, hash_key: str, range_key: str | None, model: Any
) -> None:
    # GIVEN the keys in dynembed.core.config and the PynamoDB model the adapter reads the table with
    expected = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        expected.append({"AttributeName": range_key, "KeyType": "RANGE"})
    # THEN the template, the config and the model agree
    synth.template.has_resource_properties(
        "AWS::DynamoDB::Table", {"TableName": table_name, "KeySchema": expected}
    )
    assert (model._hash_keyname, model._range_keyname) == (hash_key, range_key)


# ---- queues and event sources -----------------------------------------------------------------


def test_every_queue_is_kms_encrypted_and_refuses_plain_http(synth: Synth) -> None:
    queues = synth.of_type("AWS::SQS::Queue")
    policies = synth.of_type("AWS::SQS::QueuePolicy").values()
    key_id = synth.logical_id(synth.stack.key)
    assert {q["Properties"]["QueueName"] for q in queues.values()} == {
        NAMES.jobs_queue,
        NAMES.jobs_dlq,
        NAMES.stream_failures_queue,
        NAMES.shadow_queue,
        NAMES.shadow_dlq,
    }
    for lid, queue in queues.items():
        assert queue["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        # THEN a policy on this queue denies any request without TLS
        deny_plain = [
            s
            for p in policies
            if {"Ref": lid} in p["Properties"]["Queues"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert deny_plain, f"queue {lid} accepts requests without TLS"


def test_jobs_queue_visibility_covers_six_sync_timeouts_and_redrives_to_the_dlq(synth: Synth) -> None:
    # GIVEN the jobs queue and the sync function as synthesised (not as configured)
    jobs = synth.logical_id(synth.stack.ingest.jobs_queue)
    dlq = synth.logical_id(synth.stack.ingest.jobs_dlq)
    queue = synth.resources[jobs]["Properties"]
    sync_timeout = synth.resources[synth.function_id("sync")]["Properties"]["Timeout"]
    # THEN a message cannot reappear while its first attempt may still run, and poison goes to the DLQ
    assert queue["VisibilityTimeout"] >= 6 * sync_timeout
    assert queue["VisibilityTimeout"] == TUNING.sqs_visibility_timeout_s
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
        "maxReceiveCount": TUNING.sqs_max_receive_count,
    }


def test_stream_event_source_bisects_reports_item_failures_retries_and_parks_failures(synth: Synth) -> None:
    failures_queue = synth.logical_id(synth.stack.ingest.stream_failures_queue)
    source_table = synth.logical_id(synth.stack.data.source_table)
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": synth.function_id("classify")},
            "EventSourceArn": {"Fn::GetAtt": [source_table, "StreamArn"]},
            "BatchSize": TUNING.stream_batch_size,
            "MaximumBatchingWindowInSeconds": TUNING.stream_batching_window_s,
            "BisectBatchOnFunctionError": True,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "MaximumRetryAttempts": TUNING.stream_max_retries,
            "StartingPosition": "TRIM_HORIZON",
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [failures_queue, "Arn"]}}},
        },
    )


def test_jobs_event_source_reports_item_failures_within_the_reserved_concurrency(synth: Synth) -> None:
    jobs = synth.logical_id(synth.stack.ingest.jobs_queue)
    concurrency = Capture()
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": synth.function_id("sync")},
            "EventSourceArn": {"Fn::GetAtt": [jobs, "Arn"]},
            "BatchSize": TUNING.sqs_batch_size,
            "MaximumBatchingWindowInSeconds": TUNING.sqs_batching_window_s,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": concurrency},
        },
    )
    reserved = synth.resources[synth.function_id("sync")]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == TUNING.sync_reserved_concurrency
    assert concurrency.as_number() <= reserved


# ---- functions -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_function_runtime_layer_tracing_logs_and_environment(synth: Synth, name: str) -> None:
    # GIVEN one function of the stack
    props = synth.resources[synth.function_id(name)]["Properties"]
    layer = synth.logical_id(synth.stack.functions.shared.layer)
    # THEN it runs the shared layer on the stack's runtime with tracing, and its log group is kept briefly
    assert props["Runtime"] == RUNTIME.name
    assert props["Handler"] == "handler.handler"
    assert props["Layers"] == [{"Ref": layer}]
    assert props["TracingConfig"] == {"Mode": "Active"}
    log_group = synth.resources[props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
    assert log_group["RetentionInDays"] == 30
    assert "KmsKeyId" in log_group
    # AND its environment carries Powertools settings, the schema and every Settings field
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == NAMES.service
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMES.metrics_namespace
    assert env["LOG_LEVEL"] == "INFO"
    assert SourceSchema.from_mapping(json.loads(env[SCHEMA_ENV])) == SourceSchema()
    missing = [f for f in Settings.deployed_fields() if Settings.variable(f) not in env]
    assert not missing, f"{name} lacks DYNEMBED_* for {missing}"
    assert env["DYNEMBED_OPENSEARCH_AUTH"] == "sigv4"


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_each_function_environment_passes_the_cold_start_check(
    synth: Synth, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the function's environment as deployed (references flattened to placeholder text)
    props = synth.resources[synth.function_id(name)]["Properties"]
    env = {
        k: v if isinstance(v, str) else flatten_reference(v)
        for k, v in props["Environment"]["Variables"].items()
    }
    for variable in [v for v in os.environ if v.startswith("DYNEMBED_") or v.startswith("AWS_")]:
        monkeypatch.delenv(variable)
    for variable, value in {**env, "AWS_LAMBDA_FUNCTION_NAME": props["FunctionName"]}.items():
        monkeypatch.setenv(variable, value)
    # WHEN the settings are read as at a cold start in Lambda
    load_settings.cache_clear()
    try:
        settings = load_settings()
    finally:
        load_settings.cache_clear()
    # THEN every required value is there: reports on S3, OpenSearch signed, the stack's schema
    assert settings.in_lambda
    assert settings.reports_dir is not None and settings.reports_dir.startswith("s3://")
    assert settings.reports_dir.endswith("/reports")
    assert (settings.opensearch_auth, settings.knn_mode) == ("sigv4", "native")
    assert settings.source_schema is not None
    assert SourceSchema.from_json(settings.source_schema) == SourceSchema()


def test_function_timeouts_come_from_tuning(synth: Synth) -> None:
    timeouts = {n: synth.resources[synth.function_id(n)]["Properties"]["Timeout"] for n in ALL_FUNCTIONS}
    assert timeouts["classify"] == TUNING.classify_timeout_s
    assert timeouts["sync"] == TUNING.sync_timeout_s
    assert timeouts["workflow"] == TUNING.workflow_timeout_s


def test_every_settings_field_has_a_cloud_value(synth: Synth) -> None:
    # A Settings field without one would silently run with its local default (e.g. localhost).
    assert synth.stack.unmapped_settings == []


def test_function_roles_carry_no_aws_managed_policies(synth: Synth) -> None:
    for role in synth.of_type("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


# ---- least privilege ---------------------------------------------------------------------------


def test_bedrock_invoke_is_scoped_to_the_configured_foundation_models(synth: Synth) -> None:
    granted_to = set()
    for name in ALL_FUNCTIONS:
        for statement in synth.statements_of_role(synth.role_id_of_function(name)):
            if any(a.startswith("bedrock:") for a in _actions(statement)):
                granted_to.add(name)
                assert _actions(statement) == {"bedrock:InvokeModel"}
                for resource in _resources(statement):
                    flat = json.dumps(resource)
                    assert "*" not in flat
                    assert ":foundation-model/amazon.titan-embed-text-v2:0" in flat
    assert granted_to == {"sync", "search", "workflow", "shadow"}


def _flat(resource: Any) -> str:
    """A resolved ARN as text: ``arn:<AWS::Partition>:es:...`` (cdk-nag's rendering)."""
    return nag.flatten_reference(resource)


def _es_allows(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """OpenSearch verb -> the domain paths (after ``domain/dynembed/``) it is allowed on."""
    allowed: dict[str, set[str]] = {}
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        for action in _actions(statement):
            if action.startswith("es:"):
                paths = {_flat(r).split(":domain/dynembed/", 1)[1] for r in _resources(statement)}
                allowed.setdefault(action, set()).update(paths)
    return allowed


READ_APIS = {f"dynembed-chunks*/{api}" for api in ("_search", "_msearch", "_count", "_mget")}
SINGLE_DOC_WRITES = {"*/_doc/*", "*/_create/*", "*/_update/*"}


@pytest.mark.parametrize("name", ["search", "audit", "shadow"])
def test_readers_cannot_write_tables_or_the_index(synth: Synth, name: str) -> None:
    # GIVEN the search, audit or shadow role
    statements = synth.statements_of_role(synth.role_id_of_function(name))
    allowed = _es_allows(statements)
    # THEN it writes no table (search and shadow: only PutItem of a query sample) and holds no
    # PUT or PATCH anywhere on the domain
    samples = synth.logical_id(synth.stack.data.query_samples_table)
    for statement in statements:
        writes = _actions(statement) & WRITE_ACTIONS if statement["Effect"] == "Allow" else set()
        if writes:
            assert name != "audit" and writes == {"dynamodb:PutItem"}
            assert {json.dumps(r) for r in _resources(statement)} == {
                json.dumps({"Fn::GetAtt": [samples, "Arn"]})
            }
    assert not allowed.keys() & {"es:ESHttpPut", "es:ESHttpPatch"}
    # AND reads with GET/HEAD; POSTs only to the read APIs (audit: plus _refresh and the scroll)
    assert allowed["es:ESHttpGet"] == allowed["es:ESHttpHead"] == {"*"}
    extra_posts = {"dynembed-chunks*/_refresh", "_search/scroll"} if name == "audit" else set()
    assert allowed["es:ESHttpPost"] == READ_APIS | extra_posts
    # AND DELETE only releases the audit's scroll context (search has none)
    assert allowed.get("es:ESHttpDelete", set()) == ({"_search/scroll"} if name == "audit" else set())
    # AND single-document writes, whose ids could end in /_search, are explicitly denied
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert len(denies) == 1
    assert _actions(denies[0]) == {"es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete", "es:ESHttpPatch"}
    assert {_flat(r).split(":domain/dynembed/", 1)[1] for r in _resources(denies[0])} == SINGLE_DOC_WRITES


@pytest.mark.parametrize(("name", "verbs"), [("classify", 5), ("sync", 5), ("workflow", 6)])
def test_only_the_writers_get_write_verbs_on_the_domain(synth: Synth, name: str, verbs: int) -> None:
    allowed = _es_allows(synth.statements_of_role(synth.role_id_of_function(name)))
    assert {"es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete"} <= allowed.keys()
    assert len(allowed) == verbs
    assert all(paths == {"*"} for paths in allowed.values())


def test_drain_touches_neither_the_index_nor_the_source(synth: Synth) -> None:
    actions = _role_actions(synth, "drain")
    assert not any(a.startswith("es:") for a in actions)
    source = synth.logical_id(synth.stack.data.source_table)
    statements = synth.statements_of_role(synth.role_id_of_function("drain"))
    assert source not in json.dumps(statements)


def test_opensearch_grants_cover_only_the_domain_paths(synth: Synth) -> None:
    for name in ALL_FUNCTIONS:
        for statement in synth.statements_of_role(synth.role_id_of_function(name)):
            if any(a.startswith("es:") for a in _actions(statement)):
                for resource in _resources(statement):
                    assert _flat(resource).startswith(
                        "arn:<AWS::Partition>:es:<AWS::Region>:<AWS::AccountId>:domain/dynembed/"
                    ), (name, resource)


# ---- OpenSearch --------------------------------------------------------------------------------


def test_domain_encrypts_enforces_tls12_and_uses_fine_grained_access(synth: Synth) -> None:
    admin = synth.logical_id(synth.stack.search.admin_role)
    synth.template.has_resource_properties(
        "AWS::OpenSearchService::Domain",
        {
            "EncryptionAtRestOptions": {"Enabled": True, "KmsKeyId": Match.any_value()},
            "NodeToNodeEncryptionOptions": {"Enabled": True},
            "DomainEndpointOptions": {
                "EnforceHTTPS": True,
                "TLSSecurityPolicy": "Policy-Min-TLS-1-2-PFS-2023-10",
            },
            "AdvancedSecurityOptions": Match.object_like(
                {
                    "Enabled": True,
                    "InternalUserDatabaseEnabled": False,
                    "MasterUserOptions": {"MasterUserARN": {"Fn::GetAtt": [admin, "Arn"]}},
                }
            ),
            "ClusterConfig": Match.object_like({"ZoneAwarenessEnabled": True, "InstanceCount": 2}),
            "LogPublishingOptions": Match.object_like(
                {"SEARCH_SLOW_LOGS": Match.any_value(), "INDEX_SLOW_LOGS": Match.any_value()}
            ),
        },
    )


def test_domain_policy_grants_each_role_exactly_its_iam_statements(synth: Synth) -> None:
    # GIVEN the domain's resource policy
    (domain,) = synth.of_type("AWS::OpenSearchService::Domain").values()
    statements = domain["Properties"]["AccessPolicies"]["Statement"]
    assert "*" not in json.dumps([s["Principal"] for s in statements])

    def by_role(role_id: str) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in s.items() if k != "Principal"}
            for s in statements
            if {"Fn::GetAtt": [role_id, "Arn"]} in _as_list(s["Principal"]["AWS"])
        ]

    # THEN it names exactly the granted roles and the admin role
    named = {p["Fn::GetAtt"][0] for s in statements for p in _as_list(s["Principal"]["AWS"])}
    readers_and_writers = ("classify", "sync", "search", "audit", "workflow", "shadow", "canary", "sentinel")
    expected = {synth.role_id_of_function(n) for n in readers_and_writers}
    assert named == expected | {synth.logical_id(synth.stack.search.admin_role)}
    # AND grants each function role just what its IAM policy grants on the domain
    for name in readers_and_writers:
        role_id = synth.role_id_of_function(name)
        in_domain = _es_allows(by_role(role_id))
        assert in_domain == _es_allows(synth.statements_of_role(role_id)), name
    # AND the readers get no write verb there either, and the same explicit deny
    for name in ("search", "audit", "canary", "sentinel"):
        granted = by_role(synth.role_id_of_function(name))
        assert not _es_allows(granted).keys() & {"es:ESHttpPut", "es:ESHttpPatch"}
        assert [s["Effect"] for s in granted].count("Deny") == 1


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_vpc_variant_puts_the_domain_and_its_callers_in_the_vpc(vpc_synth: Synth) -> None:
    # GIVEN context dynembed:vpc and a three-AZ domain with dedicated masters
    vpc_synth.template.has_resource_properties(
        "AWS::OpenSearchService::Domain",
        {
            "VPCOptions": {"SubnetIds": VPC["subnetIds"], "SecurityGroupIds": Match.any_value()},
            "ClusterConfig": Match.object_like(
                {
                    "DedicatedMasterEnabled": True,
                    "DedicatedMasterCount": 3,
                    "ZoneAwarenessConfig": {"AvailabilityZoneCount": 3},
                }
            ),
        },
    )
    # THEN every function that calls OpenSearch runs in the VPC; drain (no OpenSearch) does not
    for name in ALL_FUNCTIONS:
        in_vpc = "VpcConfig" in vpc_synth.resources[vpc_synth.function_id(name)]["Properties"]
        assert in_vpc == (name != "drain"), name
    # AND the domain accepts HTTPS only from the functions' security group
    vpc_synth.template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "SourceSecurityGroupId": Match.any_value()},
    )


def test_existing_domain_gets_grants_and_endpoint_but_no_domain(endpoint_synth: Synth) -> None:
    assert not endpoint_synth.of_type("AWS::OpenSearchService::Domain")
    env = endpoint_synth.resources[endpoint_synth.function_id("sync")]["Properties"]["Environment"][
        "Variables"
    ]
    assert env["DYNEMBED_OPENSEARCH_ENDPOINT"] == EXISTING_ENDPOINT
    statements = endpoint_synth.statements_of_role(endpoint_synth.role_id_of_function("sync"))
    assert any(_resources(s) == [f"{EXISTING_DOMAIN_ARN}/*"] for s in statements)


# ---- existing source table -----------------------------------------------------------------------


def test_existing_table_is_attached_not_created(vpc_synth: Synth) -> None:
    names = {t["Properties"]["TableName"] for t in vpc_synth.of_type("AWS::DynamoDB::Table").values()}
    assert NAMES.source_table not in names
    assert EXISTING_TABLE not in names
    vpc_synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"EventSourceArn": EXISTING_STREAM_ARN, "BisectBatchOnFunctionError": True},
    )
    env = vpc_synth.resources[vpc_synth.function_id("classify")]["Properties"]["Environment"]["Variables"]
    assert env["DYNEMBED_SOURCE_TABLE"] == EXISTING_TABLE


def test_existing_table_key_lets_classify_decrypt_the_stream(vpc_synth: Synth) -> None:
    statements = vpc_synth.statements_of_role(vpc_synth.role_id_of_function("classify"))
    decrypt = [s for s in statements if "kms:Decrypt" in _actions(s)]
    assert any(EXISTING_TABLE_KEY_ARN in _resources(s) for s in decrypt)


# ---- workflow ------------------------------------------------------------------------------------


def test_state_machine_logs_everything_to_an_encrypted_group_with_tracing(synth: Synth) -> None:
    log_group = synth.logical_id(synth.stack.workflow.log_group)
    workflow_fn = synth.function_id("workflow")
    synth.template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineName": NAMES.rebuild_state_machine,
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": True,
                "Destinations": [
                    {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": [log_group, "Arn"]}}}
                ],
            },
            "TracingConfiguration": {"Enabled": True},
            "DefinitionSubstitutions": {"WorkflowFunctionArn": {"Fn::GetAtt": [workflow_fn, "Arn"]}},
        },
    )
    assert "KmsKeyId" in synth.resources[log_group]["Properties"]


def test_state_machine_may_invoke_the_workflow_function_only(synth: Synth) -> None:
    role = synth.logical_id(synth.stack.workflow.role)
    invokes = [s for s in synth.statements_of_role(role) if "lambda:InvokeFunction" in _actions(s)]
    assert invokes == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [synth.function_id("workflow"), "Arn"]},
        }
    ]


def test_no_function_calls_put_metric_data(synth: Synth) -> None:
    # Every metric, evaluation scores by generation included, is EMF in the function's logs.
    for name in ALL_FUNCTIONS:
        statements = synth.statements_of_role(synth.role_id_of_function(name))
        assert not [s for s in statements if "cloudwatch:PutMetricData" in _actions(s)], name


def test_evaluation_reports_go_to_a_private_encrypted_bucket_the_workflow_only_writes(synth: Synth) -> None:
    # GIVEN the reports bucket
    ((bucket_id, bucket),) = synth.of_type("AWS::S3::Bucket").items()
    props = bucket["Properties"]
    # THEN it is KMS-encrypted with dynembed's key, blocks public access and is retained
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["BucketKeyEnabled"] is True
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["DeletionPolicy"] == "Retain"
    # AND its policy refuses any request without TLS
    (policy,) = [
        p["Properties"]["PolicyDocument"]
        for p in synth.of_type("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert denies and denies[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # AND only the workflow may touch it, and only to put reports under reports/
    for name in ALL_FUNCTIONS:
        statements = synth.statements_of_role(synth.role_id_of_function(name))
        s3_actions = {a for s in statements for a in _actions(s) if a.startswith("s3:")}
        if name != "workflow":
            assert not s3_actions, name
            continue
        writes = [s for s in statements if "s3:PutObject" in _actions(s)]
        assert [json.dumps(r) for s in writes for r in _resources(s)] == [
            json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/reports/*"]]})
        ]


def test_workflow_reads_golden_sets_only_under_the_configured_prefixes(vpc_synth: Synth) -> None:
    statements = vpc_synth.statements_of_role(vpc_synth.role_id_of_function("workflow"))
    s3_statements = [s for s in statements if any(a.startswith("s3:") for a in _actions(s))]
    # The reports bucket's write is checked above; every other S3 statement is a read.
    read_statements = [s for s in s3_statements if _actions(s) != {"s3:PutObject"}]
    reads = sorted(json.dumps(r) for s in read_statements for r in _resources(s))
    assert all(_actions(s) == {"s3:GetObject"} for s in read_statements)
    assert len(read_statements) == len(s3_statements) - 1 and len(reads) == 2
    assert ":s3:::golden-sets/python-faq*" in reads[0]
    assert ":s3:::team-evals/*" in reads[1]


# ---- schedules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expression"), [("audit", "rate(1 hour)"), ("drain", "rate(1 minute)")])
def test_schedules_invoke_audit_hourly_and_drain_every_minute(
    synth: Synth, name: str, expression: str
) -> None:
    synth.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": expression,
            "State": "ENABLED",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [synth.function_id(name), "Arn"]}})],
        },
    )


# ---- monitoring ----------------------------------------------------------------------------------

ALARMS = [
    ("freshness-lag-p95", NAMES.metrics_namespace, METRICS.freshness_lag, THRESHOLDS.freshness_p95_s),
    ("oldest-job-age", "AWS/SQS", "ApproximateAgeOfOldestMessage", THRESHOLDS.oldest_job_age_s),
    ("jobs-dlq-messages", "AWS/SQS", "ApproximateNumberOfMessagesVisible", THRESHOLDS.dlq_messages),
    ("stream-failures-messages", "AWS/SQS", "ApproximateNumberOfMessagesVisible", THRESHOLDS.dlq_messages),
    ("orphaned-vectors", NAMES.metrics_namespace, METRICS.orphaned_vectors, THRESHOLDS.orphaned_vectors),
    ("stale-documents", NAMES.metrics_namespace, METRICS.stale_documents, THRESHOLDS.stale_documents),
    (
        "embedding-failures",
        NAMES.metrics_namespace,
        METRICS.embedding_failures,
        THRESHOLDS.embedding_failures,
    ),
    ("stream-iterator-age", "AWS/Lambda", "IteratorAge", THRESHOLDS.stream_iterator_age_ms),
    ("rebuild-failed", "AWS/States", "ExecutionsFailed", 0),
    ("missing-documents", NAMES.metrics_namespace, METRICS.missing_documents, THRESHOLDS.missing_documents),
    ("access-lag-p95", NAMES.metrics_namespace, METRICS.access_lag, THRESHOLDS.access_lag_p95_s),
    *(
        (f"{name}-errors", "AWS/Lambda", "Errors", THRESHOLDS.function_errors)
        for name in (*ALL_FUNCTIONS, *MONITOR_FUNCTIONS)
    ),
    ("search-latency-p50", NAMES.metrics_namespace, METRICS.search_latency, THRESHOLDS.search_latency_p50_ms),
    ("search-latency-p95", NAMES.metrics_namespace, METRICS.search_latency, THRESHOLDS.search_latency_p95_ms),
]
RATE_ALARMS = [
    ("weak-retrieval-rate", METRICS.weak_retrieval, THRESHOLDS.weak_retrieval_rate),
    ("zero-result-rate", METRICS.zero_results, THRESHOLDS.zero_result_rate),
]
BREACHING_WHEN_SILENT = ("orphaned-vectors", "stale-documents", "missing-documents", "freshness-lag-p95")


@pytest.mark.parametrize(("slug", "namespace", "metric", "threshold"), ALARMS)
def test_alarm_watches_its_metric_and_notifies_the_topic(
    synth: Synth, slug: str, namespace: str, metric: str, threshold: float
) -> None:
    topic = synth.logical_id(synth.stack.monitoring.topic)
    synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"{NAMES.service}-{slug}",
            "Namespace": namespace,
            "MetricName": metric,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmActions": [{"Ref": topic}],
        },
    )


def test_every_function_in_the_template_has_an_errors_alarm(synth: Synth) -> None:
    # The list comes from the template, so a function added later cannot go unwatched.
    functions = {
        lid: res["Properties"]["FunctionName"]
        for lid, res in synth.of_type("AWS::Lambda::Function").items()
        if str(res["Properties"].get("FunctionName", "")).startswith(f"{NAMES.service}-")
    }
    watched = {
        dimension["Value"]["Ref"]
        for alarm in synth.of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "Errors"
        for dimension in alarm["Properties"].get("Dimensions", [])
        if dimension["Name"] == "FunctionName" and isinstance(dimension["Value"], dict)
    }
    assert {"dynembed-canary", "dynembed-sentinel"} <= set(functions.values())
    assert {functions[lid] for lid in set(functions) - watched} == set()


def _alarm(synth: Synth, slug: str) -> dict[str, Any]:
    (alarm,) = [
        a["Properties"]
        for a in synth.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"] == f"{NAMES.service}-{slug}"
    ]
    return alarm


@pytest.mark.parametrize(("slug", "metric", "threshold"), RATE_ALARMS)
def test_rate_alarms_judge_only_periods_with_enough_samples(
    synth: Synth, slug: str, metric: str, threshold: float
) -> None:
    # GIVEN the alarm on a 0/1 metric of sampled live queries
    alarm = _alarm(synth, slug)
    by_id = {m["Id"]: m for m in alarm["Metrics"]}
    # THEN it is the metric's Average, counted only over periods with enough samples
    assert by_id["expr_1"]["Expression"] == f"IF(n >= {THRESHOLDS.live_min_samples:g}, rate, 0)"
    assert (
        by_id["rate"]["MetricStat"]["Stat"] == "Average" and by_id["n"]["MetricStat"]["Stat"] == "SampleCount"
    )
    for part in ("rate", "n"):
        stat = by_id[part]["MetricStat"]
        assert stat["Metric"]["MetricName"] == metric and stat["Period"] == 300
        assert stat["Metric"]["Dimensions"] == [{"Name": "service", "Value": NAMES.service}]
    assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (threshold, 3)
    assert alarm["TreatMissingData"] == "notBreaching"  # no traffic, no samples: nothing to judge


def test_search_latency_alarms_are_percentiles_of_sampled_queries(synth: Synth) -> None:
    assert _alarm(synth, "search-latency-p50")["ExtendedStatistic"] == "p50"
    assert _alarm(synth, "search-latency-p95")["ExtendedStatistic"] == "p95"


def test_the_query_samples_table_expires_items_and_search_may_only_add_samples(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": NAMES.query_samples_table,
            "TimeToLiveSpecification": {"AttributeName": KEYS.samples_ttl, "Enabled": True},
            "KeySchema": [
                {"AttributeName": KEYS.samples_hash, "KeyType": "HASH"},
                {"AttributeName": KEYS.samples_range, "KeyType": "RANGE"},
            ],
        },
    )
    assert "dynamodb:PutItem" in _role_actions(synth, "search", effect="Allow")
    assert "sqs:SendMessage" in _role_actions(synth, "search", effect="Allow")


def test_shadow_searches_come_from_their_queue_within_a_small_reserved_concurrency(synth: Synth) -> None:
    queue = synth.logical_id(synth.stack.live.shadow_queue)
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [queue, "Arn"]},
            "FunctionName": {"Ref": synth.function_id("shadow")},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    props = synth.resources[synth.function_id("shadow")]["Properties"]
    assert props["ReservedConcurrentExecutions"] == TUNING.shadow_reserved_concurrency


def test_every_alarm_is_tested_and_points_at_its_runbook_entry(synth: Synth) -> None:
    from tests.infra.test_quality import ALARMS as QUALITY_ALARMS  # the monitors' own, tested there

    names = {a["Properties"]["AlarmName"] for a in synth.of_type("AWS::CloudWatch::Alarm").values()}
    assert names == {f"{NAMES.service}-{slug}" for slug, *_ in [*ALARMS, *RATE_ALARMS, *QUALITY_ALARMS]}
    runbook = (REPO_ROOT / "docs" / "operations.md").read_text()
    for slug, *_ in [*ALARMS, *RATE_ALARMS]:
        assert f"({slug})" in _alarm(synth, slug)["AlarmDescription"]
        assert f"| `{slug}` |" in runbook, f"docs/operations.md has no runbook row for {slug}"


@pytest.mark.parametrize("slug", BREACHING_WHEN_SILENT)
def test_audit_and_freshness_alarms_treat_silence_as_breaching(synth: Synth, slug: str) -> None:
    # An audit that stopped running, or a pipeline that stopped indexing, publishes nothing.
    assert _alarm(synth, slug)["TreatMissingData"] == "breaching"


def test_audit_alarms_span_two_audit_periods(synth: Synth) -> None:
    # One audit period may hold no datapoint (a run's end drifting across the boundary): two may not.
    for slug in ("orphaned-vectors", "stale-documents", "missing-documents"):
        alarm = _alarm(synth, slug)
        assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3600, 2, 2)


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_each_function_has_an_errors_alarm(synth: Synth, name: str) -> None:
    alarm = _alarm(synth, f"{name}-errors")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": synth.function_id(name)}}]
    assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 300)
    assert alarm["TreatMissingData"] == "notBreaching"  # not invoked: no errors


def test_access_lag_alarm_is_p95_of_the_classify_metric(synth: Synth) -> None:
    alarm = _alarm(synth, "access-lag-p95")
    assert alarm["ExtendedStatistic"] == "p95"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": NAMES.service}]


def test_domain_metrics_carry_the_service_dimension_and_freshness_is_p95(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": METRICS.freshness_lag,
            "ExtendedStatistic": "p95",
            "Dimensions": [{"Name": "service", "Value": NAMES.service}],
        },
    )


def test_dashboard_shows_every_alarm(synth: Synth) -> None:
    (dashboard,) = synth.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert dashboard["Properties"]["DashboardName"] == NAMES.service
    for alarm in synth.stack.monitoring.alarms.values():
        assert synth.logical_id(alarm) in body


def test_alarm_topic_is_encrypted_and_refuses_plain_http(synth: Synth) -> None:
    synth.template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    synth.template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": Match.object_like(
                {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                            )
                        ]
                    )
                }
            )
        },
    )


# ---- template as a whole -------------------------------------------------------------------------


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if "Ref" in node and isinstance(node["Ref"], str):
            found.add(node["Ref"])
        if "Fn::GetAtt" in node:
            found.add(node["Fn::GetAtt"][0])
        for value in node.values():
            found |= _references(value)
    elif isinstance(node, list):
        for value in node:
            found |= _references(value)
    return found


def test_template_has_no_dependency_cycle(synth: Synth) -> None:
    # CloudFormation rejects a cycle only at deploy time; find it here.
    resources = synth.resources
    edges = {
        lid: (_references(res.get("Properties", {})) | set(res.get("DependsOn", []))) & resources.keys()
        for lid, res in resources.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        assert state.get(node) != 1, f"cycle: {' -> '.join([*path, node])}"
        state[node] = 1
        for dep in edges[node]:
            visit(dep, [*path, node])
        state[node] = 2

    for lid in resources:
        visit(lid, [])
