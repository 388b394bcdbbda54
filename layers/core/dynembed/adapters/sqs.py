"""The jobs queue on SQS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3
from botocore.exceptions import ClientError

from dynembed.core.errors import TransientError
from dynembed.core.models import ReconcileJob
from dynembed.core.samples import ShadowJob

_SQS_BATCH = 10


class SqsJobQueue:
    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self.client = client or boto3.client("sqs")

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


class SqsShadowQueue:
    """Shadow searches of a rebuild's candidate (``ShadowJob`` messages)."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self.client = client or boto3.client("sqs")

    def send(self, job: ShadowJob) -> None:
        try:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=job.model_dump_json())
        except ClientError as exc:
            raise TransientError(f"cannot send a shadow search to {self.queue_url}: {exc}") from exc
