"""The query-sample store on DynamoDB: sampled live queries and shadow comparisons, one item
each, expiring by TTL.

Why a table and not a queue or metrics alone: the weak-retrieval and zero-result rates and the
latencies are CloudWatch metrics already (EMF, for the alarms), but the drift figure, the least
covered queries and the shadow disagreements need the individual queries of a window, read back
by generation; a queue can be read only once, and metrics keep no query. One partition per
generation (``sample#<id>``) or candidate (``shadow#<id>``), sorted by time, makes a window one
Query; TTL (``expires_at``) ends each item after ``query_sample_ttl_days`` at no cost. Writes
are bounded by the sample rate (10% of 1,000 searches/s is 100 writes/s, well within one
partition's 1,000).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from dynembed.core.config import KEYS
from dynembed.core.errors import TransientError
from dynembed.core.samples import QuerySample, ShadowComparison

SAMPLE_PREFIX = "sample#"
SHADOW_PREFIX = "shadow#"


def sort_key(at: float, nonce: str | None = None) -> str:
    return f"{int(at * 1000):015d}#{secrets.token_hex(4) if nonce is None else nonce}"


class DynamoQuerySamples:
    def __init__(
        self,
        table_name: str,
        ttl_s: float,
        resource: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = (resource or boto3.resource("dynamodb")).Table(table_name)
        self.ttl_s = ttl_s
        self.clock = clock

    def put_sample(self, sample: QuerySample) -> None:
        self._put(SAMPLE_PREFIX + sample.generation, sample.at, sample.model_dump_json())

    def samples(self, generation: str, since: float | None = None, limit: int = 1000) -> list[QuerySample]:
        return [
            QuerySample.model_validate_json(r) for r in self._query(SAMPLE_PREFIX + generation, since, limit)
        ]

    def put_comparison(self, comparison: ShadowComparison) -> None:
        self._put(SHADOW_PREFIX + comparison.candidate, comparison.at, comparison.model_dump_json())

    def comparisons(self, candidate: str, limit: int = 1000) -> list[ShadowComparison]:
        return [
            ShadowComparison.model_validate_json(r)
            for r in self._query(SHADOW_PREFIX + candidate, None, limit)
        ]

    def _put(self, partition: str, at: float, record: str) -> None:
        item = {
            KEYS.samples_hash: partition,
            KEYS.samples_range: sort_key(at),
            KEYS.samples_ttl: int(self.clock() + self.ttl_s),
            "record": record,
        }
        try:
            self.table.put_item(Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"query sample not stored in {self.table.name}: {exc}") from exc

    def _query(self, partition: str, since: float | None, limit: int) -> list[str]:
        """Newest first from DynamoDB, returned oldest first; items past their TTL but not yet
        deleted (DynamoDB deletes within days) are left out."""
        condition = f"{KEYS.samples_hash} = :pk"
        values: dict[str, Any] = {":pk": partition, ":now": int(self.clock())}
        if since is not None:
            condition += f" AND {KEYS.samples_range} >= :since"
            values[":since"] = sort_key(since, "")
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "FilterExpression": "#ttl > :now",
            "ExpressionAttributeNames": {"#ttl": KEYS.samples_ttl},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        records: list[str] = []
        try:
            while len(records) < limit:
                response = self.table.query(**kwargs)
                records += [str(item["record"]) for item in response.get("Items", [])]
                start = response.get("LastEvaluatedKey")
                if not start:
                    break
                kwargs["ExclusiveStartKey"] = start
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"cannot read query samples from {self.table.name}: {exc}") from exc
        return list(reversed(records[:limit]))
