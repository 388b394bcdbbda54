"""SQS adapters: the jobs queue, the jobs DLQ (with each job's reason) and the stream-failures
queue (malformed records)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dynembed.core.errors import TransientError
from dynembed.core.models import ReconcileJob
from dynembed.core.samples import ShadowJob

_SQS_BATCH = 10
_DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


class SqsJobQueue:
    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def send(self, jobs: Sequence[ReconcileJob]) -> None:
        """SendMessageBatch in tens; any entry that failed raises so the caller's record fails
        (and is retried) instead of the job vanishing (I7)."""
        for start in range(0, len(jobs), _SQS_BATCH):
            batch = jobs[start : start + _SQS_BATCH]
            entries = [{"Id": str(i), "MessageBody": job.model_dump_json()} for i, job in enumerate(batch)]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except ClientError as exc:
                raise TransientError(f"cannot send {len(batch)} jobs to {self.queue_url}: {exc}") from exc
            failed = response.get("Failed") or []
            if failed:
                docs = ", ".join(batch[int(f["Id"])].doc_id for f in failed)
                raise TransientError(f"SQS refused jobs for {docs}: {failed[0].get('Message', failed[0])}")

    def depth(self) -> int:
        try:
            attrs = self.client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=list(_DEPTH_ATTRIBUTES)
            )["Attributes"]
        except (BotoCoreError, ClientError) as exc:
            raise TransientError(f"cannot read the depth of {self.queue_url}: {exc}") from exc
        return sum(int(attrs.get(name, 0)) for name in _DEPTH_ATTRIBUTES)


class SqsJobDeadLetters:
    """The job's own message body, its reason and attempts as message attributes, so a
    redrive sends the very same job back."""

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def send(self, body: str, reason: str, attempts: int) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason[:1000]},
                "attempts": {"DataType": "Number", "StringValue": str(attempts)},
            },
        )


class SqsDeadLetters:
    """Malformed stream records, with their reason, to the stream-failures queue."""

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def send(self, body: Mapping[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body, default=str))


class SqsShadowQueue:
    """Shadow searches of a rebuild's candidate (``ShadowJob`` messages)."""

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def send(self, job: ShadowJob) -> None:
        try:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=job.model_dump_json())
        except ClientError as exc:
            raise TransientError(f"cannot send a shadow search to {self.queue_url}: {exc}") from exc
