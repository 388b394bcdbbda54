"""The tables: the operator's source table (created for a trial, or attached) and dynembed's own.

Key attributes come from ``dynembed.core.config.KEYS`` (and the source schema's id attribute), the
same names the PynamoDB models use locally. Every table dynembed creates has point-in-time
recovery and is encrypted with the stack's customer-managed key; all are retained on stack
deletion (the source and the ledger are not rebuildable from anything else), but the query
samples, which expire by TTL anyway.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from dynembed.core.config import KEYS, NAMES
from dynembed_infra.context import DeploymentConfig

HELD_JOBS_HASH: str = KEYS.held_jobs_hash


class Data(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, key: kms.IKey, config: DeploymentConfig
    ) -> None:
        super().__init__(scope, construct_id)
        self._key = key
        self.source_table: dynamodb.ITable
        if config.existing_source_table_name and config.existing_source_stream_arn:
            self.source_table = dynamodb.Table.from_table_attributes(
                self,
                "SourceTable",
                table_name=config.existing_source_table_name,
                table_stream_arn=config.existing_source_stream_arn,
                encryption_key=(
                    kms.Key.from_key_arn(self, "SourceTableKey", config.existing_source_table_key_arn)
                    if config.existing_source_table_key_arn
                    else None
                ),
            )
        else:
            self.source_table = self._table(
                "SourceTable",
                NAMES.source_table,
                config.source_schema.id_attribute,
                stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            )
        self.ledger_table = self._table(
            "LedgerTable", NAMES.ledger_table, KEYS.ledger_hash, KEYS.ledger_range
        )
        self.registry_table = self._table("RegistryTable", NAMES.registry_table, KEYS.registry_hash)
        self.embedding_cache_table = self._table(
            "EmbeddingCacheTable", NAMES.embedding_cache_table, KEYS.cache_hash
        )
        self.held_jobs_table = self._table("HeldJobsTable", NAMES.held_jobs_table, HELD_JOBS_HASH)
        # Sampled live queries and shadow comparisons: expire by TTL; nothing else depends on them.
        self.query_samples_table = self._table(
            "QuerySamplesTable",
            NAMES.query_samples_table,
            KEYS.samples_hash,
            KEYS.samples_range,
            ttl_attribute=KEYS.samples_ttl,
            removal=RemovalPolicy.DESTROY,
        )

    def _table(
        self,
        construct_id: str,
        name: str,
        hash_key: str,
        range_key: str | None = None,
        stream: dynamodb.StreamViewType | None = None,
        ttl_attribute: str | None = None,
        removal: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            construct_id,
            table_name=name,
            partition_key=dynamodb.Attribute(name=hash_key, type=dynamodb.AttributeType.STRING),
            sort_key=(
                dynamodb.Attribute(name=range_key, type=dynamodb.AttributeType.STRING) if range_key else None
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            stream=stream,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self._key,
            time_to_live_attribute=ttl_attribute,
            removal_policy=removal,
        )
