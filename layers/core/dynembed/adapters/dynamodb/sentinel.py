"""Writes the end-to-end sentinel's own items to the operator's source table, and nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError

from dynembed.adapters.dynamodb.tables import raise_client
from dynembed.core.models import is_sentinel


class DynamoSentinelWriter:
    """An id outside the sentinel prefix is refused here, as IAM refuses it in AWS
    (``dynamodb:LeadingKeys`` on the sentinel function's role)."""

    def __init__(
        self, table_name: str, id_attribute: str, *, region: str, resource: Any | None = None
    ) -> None:
        self.table = (resource or boto3.resource("dynamodb", region_name=region)).Table(table_name)
        self.id_attribute = id_attribute

    def put_item(self, item: Mapping[str, Any]) -> None:
        doc_id = str(item.get(self.id_attribute, ""))
        _only_sentinel(doc_id)
        try:
            self.table.put_item(Item=dict(item))
        except ClientError as exc:
            raise_client(exc, f"sentinel put {doc_id}")

    def delete_item(self, doc_id: str) -> None:
        _only_sentinel(doc_id)
        try:
            self.table.delete_item(Key={self.id_attribute: doc_id})
        except ClientError as exc:
            raise_client(exc, f"sentinel delete {doc_id}")


def _only_sentinel(doc_id: str) -> None:
    if not is_sentinel(doc_id):
        raise ValueError(f"the sentinel writer writes sentinel items only, not {doc_id!r}")
