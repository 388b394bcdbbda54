"""Pumps that behave like Lambda event source mappings, so handlers see what AWS would send.

Stream pump (DynamoDB Streams → classify): batch size, batching window, ``batchItemFailures``
(retry from the first failed record), bisect on function error, maximum retries, on-failure
destination (an SQS queue receiving the failed batch's metadata and records).
SQS pump (jobs → sync): batch size, visibility timeout, ``batchItemFailures`` (only those come
back), maxReceiveCount → DLQ through the queue's redrive policy.

Deviation from AWS, on purpose: a failed SQS message becomes visible again after
``retry_delay_s`` (short) instead of the full visibility timeout, so local retries take seconds.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dynembed.core.config import TUNING

log = logging.getLogger("dynembed_ops.local")

Invoke = Callable[[dict[str, Any]], Any]


@dataclass
class StreamPumpStats:
    batches: int = 0
    records: int = 0
    retries: int = 0
    bisects: int = 0
    sent_to_failure_destination: int = 0


@dataclass
class StreamPump:
    streams: Any  # boto3 dynamodbstreams client
    sqs: Any
    stream_arn: str
    invoke: Invoke
    on_failure_queue_url: str | None = None
    batch_size: int = TUNING.stream_batch_size
    batching_window_s: float = 0.0
    max_retries: int = TUNING.stream_max_retries
    bisect_on_error: bool = TUNING.stream_bisect_on_error
    region: str = "us-east-1"
    stats: StreamPumpStats = field(default_factory=StreamPumpStats)
    describe_every_s: float = 5.0
    """New shards are looked for this often (a table's stream rarely splits; Lambda's poller,
    too, lists shards on its own schedule), not before every batch."""
    _described_at: float = float("-inf")
    _iterators: dict[str, str | None] = field(default_factory=dict)
    _buffer: deque[dict[str, Any]] = field(default_factory=deque)
    _attempts: dict[str, int] = field(default_factory=dict)

    def _fetch(self) -> None:
        if time.monotonic() - self._described_at >= self.describe_every_s:
            shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
            self._described_at = time.monotonic()
            for shard in shards:
                shard_id = shard["ShardId"]
                if shard_id not in self._iterators:
                    self._iterators[shard_id] = self.streams.get_shard_iterator(
                        StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                    )["ShardIterator"]
        for shard_id, iterator in list(self._iterators.items()):
            while iterator:
                response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                records = response.get("Records", [])
                for record in records:
                    self._buffer.append(self._lambda_shape(record))
                iterator = response.get("NextShardIterator")
                self._iterators[shard_id] = iterator
                if not records:
                    break

    def _lambda_shape(self, record: dict[str, Any]) -> dict[str, Any]:
        """What Lambda hands the function: eventSourceARN added, datetimes as epoch seconds."""
        shaped = json.loads(json.dumps(record, default=_epoch))
        shaped["eventSourceARN"] = self.stream_arn
        shaped.setdefault("awsRegion", self.region)
        shaped.setdefault("eventSource", "aws:dynamodb")
        return shaped

    def pending(self) -> int:
        return len(self._buffer)

    def step(self) -> int:
        """Deliver at most one batch; returns the number of records settled."""
        self._fetch()
        if not self._buffer:
            return 0
        if self.batching_window_s and len(self._buffer) < self.batch_size:
            time.sleep(self.batching_window_s)
            self._fetch()
        batch = [self._buffer[i] for i in range(min(self.batch_size, len(self._buffer)))]
        settled = self._deliver(batch)
        for _ in range(settled):
            self._buffer.popleft()
        return settled

    def _deliver(self, batch: list[dict[str, Any]]) -> int:
        """Returns how many records from the batch's start are done (processed or dead-lettered)."""
        key = batch[0]["dynamodb"]["SequenceNumber"]
        self.stats.batches += 1
        try:
            response = self.invoke({"Records": batch})
        except Exception as exc:  # function error: bisect, retry, then on-failure destination
            log.warning("classify failed on %d records: %s", len(batch), exc)
            return self._after_error(batch, key, str(exc))
        failures = (response or {}).get("batchItemFailures") or []
        if not failures:
            self._attempts.pop(key, None)
            self.stats.records += len(batch)
            return len(batch)
        failed_seqs = {f["itemIdentifier"] for f in failures}
        first = next(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed_seqs)
        if first > 0:  # checkpoint before the first failure; the rest is retried as a new batch
            self.stats.records += first
            return first
        return self._after_error(batch, key, "batch item failure on the first record")

    def _after_error(self, batch: list[dict[str, Any]], key: str, reason: str) -> int:
        attempts = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempts
        if self.bisect_on_error and len(batch) > 1:
            self.stats.bisects += 1
            half = len(batch) // 2
            done = self._deliver(batch[:half])
            if done < half:
                return done
            return half + self._deliver(batch[half:])
        if attempts <= self.max_retries:
            self.stats.retries += 1
            return 0
        self._send_to_failure_destination(batch, reason, attempts)
        self._attempts.pop(key, None)
        return len(batch)

    def _send_to_failure_destination(self, batch: list[dict[str, Any]], reason: str, attempts: int) -> None:
        self.stats.sent_to_failure_destination += len(batch)
        if not self.on_failure_queue_url:
            log.error("dropping %d stream records: no on-failure destination", len(batch))
            return
        body = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts},
            "responseContext": {"functionError": "Unhandled", "reason": reason},
            "DDBStreamBatchInfo": {
                "streamArn": self.stream_arn,
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "batchSize": len(batch),
            },
            "records": batch,
        }
        self.sqs.send_message(QueueUrl=self.on_failure_queue_url, MessageBody=json.dumps(body, default=str))


@dataclass
class SqsPumpStats:
    batches: int = 0
    messages: int = 0
    failures: int = 0


@dataclass
class SqsPump:
    sqs: Any
    queue_url: str
    queue_arn: str
    invoke: Invoke
    batch_size: int = TUNING.sqs_batch_size
    visibility_timeout_s: int = TUNING.sqs_visibility_timeout_s
    retry_delay_s: int = 0
    region: str = "us-east-1"
    concurrency: int = 1
    """Invocations at once, as Lambda's SQS event source runs up to the function's concurrency."""
    stats: SqsPumpStats = field(default_factory=SqsPumpStats)
    _receiving: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counting: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def drain(self) -> int:
        """Batches received and handled until none is visible: ``concurrency`` pollers, each
        invoking the function with its own batch, so one batch's requests overlap another's."""
        if self.concurrency <= 1:
            return self._poll_until_empty()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="sqs-pump") as pool:
            return sum(pool.map(lambda _: self._poll_until_empty(), range(self.concurrency)))

    def _poll_until_empty(self) -> int:
        total = 0
        while got := self.step():
            total += got
        return total

    def step(self) -> int:
        # One receive at a time: moto's ReceiveMessage has no lock of its own, and two at once
        # could both take a message (SQS may deliver twice, but a local run should not flap).
        with self._receiving:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                VisibilityTimeout=self.visibility_timeout_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        with self._counting:
            self.stats.batches += 1
        event = {"Records": [self._lambda_shape(m) for m in messages]}
        try:
            result = self.invoke(event)
            failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures") or []}
        except Exception as exc:
            log.warning("sync failed on a batch of %d: %s", len(messages), exc)
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        for message in retry:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=self.retry_delay_s,
            )
        with self._counting:
            self.stats.messages += len(done)
            self.stats.failures += len(retry)
        return len(messages)

    def _lambda_shape(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = message.get("Attributes", {})
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {
                "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
                "SenderId": attributes.get("SenderId", "local"),
                "ApproximateFirstReceiveTimestamp": attributes.get(
                    "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
                ),
            },
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value.get("DataType", "String"),
                }
                for name, value in (message.get("MessageAttributes") or {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }


def _epoch(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return int(value.timestamp())
    if isinstance(value, bytes | bytearray):  # binary attributes: base64, as Lambda delivers them
        return base64.b64encode(value).decode()
    return str(value)
