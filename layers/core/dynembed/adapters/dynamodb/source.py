"""Reads the operator's source table (boto3: its key attribute comes from the source schema)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

from dynembed.adapters.dynamodb.tables import raise_client
from dynembed.core.errors import TransientError


class DynamoSourceReader:
    def __init__(
        self, table_name: str, id_attribute: str, *, region: str, resource: Any | None = None
    ) -> None:
        self.table = (resource or boto3.resource("dynamodb", region_name=region)).Table(table_name)
        self.id_attribute = id_attribute

    def get_item(self, doc_id: str) -> dict[str, Any] | None:
        try:
            response = self.table.get_item(Key={self.id_attribute: doc_id}, ConsistentRead=True)
        except ClientError as exc:
            raise_client(exc, f"source get {doc_id}")
        item: dict[str, Any] | None = response.get("Item")
        return item

    def get_items(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """BatchGetItem (consistent) in pages of 100, retrying unprocessed keys."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(doc_ids))
        for start in range(0, len(wanted), 100):
            keys = [{self.id_attribute: d} for d in wanted[start : start + 100]]
            for attempt in range(8):
                try:
                    response = self.table.meta.client.batch_get_item(
                        RequestItems={self.table.name: {"Keys": keys, "ConsistentRead": True}}
                    )
                except ClientError as exc:
                    raise_client(exc, f"source batch get of {len(keys)} docs")
                for item in response.get("Responses", {}).get(self.table.name, []):
                    found[str(item[self.id_attribute])] = item
                keys = response.get("UnprocessedKeys", {}).get(self.table.name, {}).get("Keys", [])
                if not keys:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            if keys:
                raise TransientError(f"source batch get left {len(keys)} keys unprocessed")
        return found

    def approximate_count(self) -> int | None:
        """DescribeTable's ItemCount: refreshed by DynamoDB about every six hours."""
        try:
            table = self.table.meta.client.describe_table(TableName=self.table.name)["Table"]
        except ClientError as exc:
            raise_client(exc, "source describe_table")
        count = table.get("ItemCount")
        return int(count) if count is not None else None

    def scan_segment(
        self, segment: int, total_segments: int, start_key: dict[str, Any] | None, limit: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        kwargs: dict[str, Any] = {
            "Segment": segment,
            "TotalSegments": total_segments,
            "Limit": limit,
            "ConsistentRead": True,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        try:
            response = self.table.scan(**kwargs)
        except ClientError as exc:
            raise_client(exc, f"source scan segment {segment}")
        return response.get("Items", []), plain_key(response.get("LastEvaluatedKey"))


def plain_key(key: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """LastEvaluatedKey → JSON-safe (Decimal → int), as the workflow keeps it in its progress."""
    if key is None:
        return None
    return {
        k: (int(v) if isinstance(v, Decimal) and v == v.to_integral_value() else v) for k, v in key.items()
    }
