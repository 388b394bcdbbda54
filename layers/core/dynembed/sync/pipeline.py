"""Batch processing for the Lambda event sources (Powertools BatchProcessor), shared by the
handlers and the local runtime. Errors become batch-item failures here and nowhere else."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from dynembed.core.errors import MalformedRecordError
from dynembed.core.models import ReconcileJob
from dynembed.core.observability import logger
from dynembed.wiring import Services


def process_stream_batch(event: dict[str, Any], svc: Services) -> dict[str, Any]:
    """classify: apply access/delete/metadata decisions record by record, then send the batch's
    content jobs. A record that fails reports its sequence number, so Lambda retries from there."""
    applier = svc.applier()
    applier.begin_batch()
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)

    def handle(record: DynamoDBRecord) -> None:
        decision = applier.handle_record(record.raw_event)
        if decision is not None:
            logger.info(
                "decision",
                doc_id=decision.doc_id,
                kind=decision.kind.value,
                actions=[a.value for a in decision.actions],
                version=decision.source_version,
                reason=decision.reason,
            )

    with processor(records=event.get("Records", []), handler=handle):
        processor.process()
    applier.end_batch()
    return dict(processor.response())


def process_job_batch(event: dict[str, Any], svc: Services) -> dict[str, Any]:
    """sync: reconcile every job of the batch together (one embedding call per model), then
    report each job's own outcome. A job on its last allowed attempt, or one that can never
    succeed, goes to the DLQ with its reason instead of vanishing (I7)."""
    records = event.get("Records", [])
    parsed: dict[str, ReconcileJob | Exception] = {}
    for raw in records:
        message_id = raw.get("messageId", "")
        try:
            parsed[message_id] = ReconcileJob.model_validate_json(raw.get("body", ""))
        except ValidationError as exc:
            parsed[message_id] = MalformedRecordError(
                f"invalid reconcile job: {exc.errors()[0]['msg']}", _doc_hint(raw)
            )
    jobs = {mid: job for mid, job in parsed.items() if isinstance(job, ReconcileJob)}
    outcomes = svc.reconciler().reconcile(list(jobs.values()))
    results: dict[str, Exception | None] = {mid: r for mid, r in parsed.items() if isinstance(r, Exception)}
    for mid, outcome in zip(jobs, outcomes, strict=True):
        results[mid] = outcome.error

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def handle(record: SQSRecord) -> None:
        error = results.get(record.message_id)
        if error is None:
            return
        attempts = int(record.attributes.approximate_receive_count or 1)
        permanent = isinstance(error, MalformedRecordError)
        logger.warning("job failed", message_id=record.message_id, error=str(error), attempt=attempts)
        dead_letters = svc.job_dead_letters
        if (permanent or attempts >= svc.settings.max_receive_count) and dead_letters is not None:
            dead_letters.send(record.body, f"{type(error).__name__}: {error}", attempts)
            return  # dead-lettered with its reason: the message is done
        raise error

    with processor(records=records, handler=handle):
        processor.process()
    return dict(processor.response())


def _doc_hint(raw: dict[str, Any]) -> str | None:
    try:
        body = json.loads(raw.get("body", ""))
        return str(body.get("doc_id")) if isinstance(body, dict) and body.get("doc_id") else None
    except (json.JSONDecodeError, TypeError):
        return None
