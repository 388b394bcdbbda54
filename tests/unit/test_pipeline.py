"""The sync flow end to end on fakes, through the Lambda batch entry points of
``dynembed.sync.pipeline``: stream records → classify → ChangeApplier (patches, deletes, held or
queued jobs) → SQS job batches → reconcile; failures become batch-item failures or dead letters
with their reason, never silent losses (I7)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynembed.core.config import Settings
from dynembed.core.errors import TransientError
from dynembed.core.models import ReconcileJob
from dynembed.core.schema import SourceSchema, TombstoneRule, UpdateMode, UpdatePolicy
from dynembed.sync.drain import drain_held_jobs
from dynembed.sync.pipeline import process_job_batch, process_stream_batch
from tests.fakes import InMemoryDeadLetters, InMemoryHeldJobs, InMemoryJobDeadLetters
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit

DLQ = "https://sqs.test/dlq"
BODY = paragraphs("alpha", "bravo", "charlie")
CLEAN = {"orphaned": [], "missing": [], "stale": [], "duplicates": []}


def harness(**options: Any) -> Harness:
    h = Harness(job_dead_letters=InMemoryJobDeadLetters(), **options)
    h.settings = Settings(
        index_alias=h.alias, index_prefix=h.index_prefix, jobs_dlq_url=DLQ, max_receive_count=3
    )
    return h


def dead_jobs(h: Harness) -> list[tuple[str, str, int]]:
    assert h.job_dead_letters is not None
    return h.job_dead_letters.sent


def stream_event(h: Harness) -> dict[str, Any]:
    records, h.records = h.records, []
    return {"Records": records}


def sqs_record(body: str, message_id: str, attempt: int = 1) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(attempt), "SentTimestamp": "1700000000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs",
        "awsRegion": "us-east-1",
    }


def job_event(jobs: list[ReconcileJob], attempt: int = 1) -> dict[str, Any]:
    return {"Records": [sqs_record(j.model_dump_json(), f"m{n}", attempt) for n, j in enumerate(jobs)]}


def failures(response: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


# ---- the classify side ---------------------------------------------------------------------------


def test_a_stream_batch_queues_content_jobs_and_a_job_batch_indexes_them() -> None:
    # GIVEN two new docs in the stream
    h = harness()
    h.write("d1", body=BODY)
    h.write("d2", body=BODY.replace("alpha", "omega"))
    # WHEN the classify batch and then the sync batch run
    assert failures(process_stream_batch(stream_event(h), h.services())) == []
    jobs, h.queue.sent = h.queue.sent, []
    assert sorted(j.doc_id for j in jobs) == ["d1", "d2"]
    assert failures(process_job_batch(job_event(jobs), h.services())) == []
    # THEN the index holds exactly what the source says
    assert h.differences() == CLEAN


def test_an_acl_change_is_patched_by_the_stream_batch_without_a_job_I5() -> None:
    # GIVEN an indexed doc
    h = harness()
    h.write("d1", body=BODY)
    h.run()
    embedded = h.embedder.document_texts
    # WHEN only its ACL changes
    h.write("d1", acl=["hr"])
    process_stream_batch(stream_event(h), h.services())
    # THEN every chunk carries the new ACL at once, nothing was queued or embedded
    assert h.queue.sent == []
    assert {tuple(c["acl"]) for c in h.indexed().values()} == {("hr",)}
    assert h.embedder.document_texts == embedded


def test_a_record_that_fails_reports_its_sequence_number_for_the_retry() -> None:
    # GIVEN an indexed doc whose ACL patch will hit an index fault
    h = harness()
    h.write("d1", body=BODY)
    h.run()
    h.write("d1", acl=["hr"])
    event = stream_event(h)
    h.index.fail_next_writes.append(TransientError("index throttled"))
    # WHEN the stream batch runs
    response = process_stream_batch(event, h.services())
    # THEN that record is reported failed (Lambda retries from it); a redelivery fixes it
    assert failures(response) == [event["Records"][0]["dynamodb"]["SequenceNumber"]]
    assert failures(process_stream_batch(event, h.services())) == []
    assert {tuple(c["acl"]) for c in h.indexed().values()} == {("hr",)}


def test_a_malformed_record_is_dead_lettered_with_its_reason_not_retried() -> None:
    # GIVEN a record whose version is not a number, among good ones
    dead = InMemoryDeadLetters()
    h = harness(dead_letters=dead)
    h.write("good", body=BODY)
    h.source.items["bad"] = {"doc_id": "bad", "version": "seven", "body": BODY, "acl": ["public"]}
    h._record("INSERT", None, h.source.items["bad"])
    # WHEN the batch runs
    response = process_stream_batch(stream_event(h), h.services())
    # THEN nothing fails (the shard moves on), the bad record is kept whole with its reason
    assert failures(response) == []
    [letter] = dead.bodies
    assert letter["doc_id"] == "bad" and "version" in letter["reason"]
    assert letter["record"]["eventName"] == "INSERT"
    assert [j.doc_id for j in h.queue.sent] == ["good"]


def test_without_a_dead_letter_queue_a_malformed_record_fails_the_item() -> None:
    h = harness(dead_letters=None)
    h.source.items["bad"] = {"doc_id": "bad", "version": "seven", "body": BODY}
    h._record("INSERT", None, h.source.items["bad"])
    event = stream_event(h)
    assert failures(process_stream_batch(event, h.services())) == [
        event["Records"][0]["dynamodb"]["SequenceNumber"]
    ]


def test_a_delete_in_the_stream_removes_the_chunks_at_once_I3() -> None:
    h = harness()
    h.write("d1", body=BODY)
    h.run()
    h.remove("d1")
    process_stream_batch(stream_event(h), h.services())
    assert h.indexed() == {}
    assert h.queue.sent == []


def test_a_tombstoned_doc_is_deleted_like_a_removed_one() -> None:
    h = harness(schema=SourceSchema(tombstone=TombstoneRule(attribute="status", values=("archived",))))
    h.write("d1", body=BODY)
    h.run()
    h.write("d1", status="archived")
    process_stream_batch(stream_event(h), h.services())
    assert h.indexed() == {}


def test_the_batched_policy_holds_content_jobs_until_the_drain() -> None:
    # GIVEN a tenant on the batched policy and one on the immediate default
    schema = SourceSchema(
        policies={"tenant:slow": UpdatePolicy(mode=UpdateMode.BATCHED, max_delay_seconds=60)}
    )
    held = InMemoryHeldJobs()
    h = harness(schema=schema, held=held)
    h.write("s1", body=BODY, tenant="slow")
    h.write("s1", body=BODY + "\n\nmore", tenant="slow")
    h.write("f1", body=BODY, tenant="fast")
    # WHEN the stream batch runs
    process_stream_batch(stream_event(h), h.services())
    # THEN the fast doc's job is queued, the slow doc's two edits are held as one
    assert [j.doc_id for j in h.queue.sent] == ["f1"]
    [(kept, edits)] = held.due(flush_all=True)
    assert (kept.doc_id, kept.min_source_version, edits) == ("s1", 2, 1)
    assert h.telemetry.get("JobsHeld") == 1
    # AND once the drain sends it, sync brings both docs up to date
    drain_held_jobs(held, h.queue, schema, now=10**10)
    h.sync()
    assert h.differences() == CLEAN


# ---- the sync side ---------------------------------------------------------------------------------


def test_a_malformed_job_goes_to_the_dlq_with_its_reason() -> None:
    # GIVEN a job batch with one body that is not a job
    h = harness()
    h.write("d1", body=BODY)
    [good] = h.classify()
    event = {
        "Records": [
            sqs_record(good.model_dump_json(), "ok"),
            sqs_record('{"doc_id": "x", "min_source_version": -1}', "bad"),
        ]
    }
    # WHEN it runs
    response = process_job_batch(event, h.services())
    # THEN the good job is indexed; the bad one is dead-lettered at once (it can never succeed)
    assert failures(response) == []
    [(body, reason, _attempts)] = dead_jobs(h)
    assert body == event["Records"][1]["body"]
    assert reason.startswith("MalformedRecordError:") and "invalid reconcile job" in reason
    assert h.differences() == CLEAN


def test_a_body_that_is_not_json_is_dead_lettered_too() -> None:
    h = harness()
    response = process_job_batch({"Records": [sqs_record("not json", "m0")]}, h.services())
    assert failures(response) == []
    assert [body for body, _reason, _attempts in dead_jobs(h)] == ["not json"]


def test_a_transient_failure_is_retried_then_dead_lettered_on_the_last_attempt() -> None:
    # GIVEN a job whose index writes keep failing
    h = harness()
    h.write("d1", body=BODY)
    jobs = h.classify()
    # WHEN it fails on its first attempt  THEN it is reported for redelivery, not dead-lettered
    h.index.fail_next_writes.append(TransientError("index throttled"))
    assert failures(process_job_batch(job_event(jobs, attempt=1), h.services())) == ["m0"]
    assert dead_jobs(h) == []
    # WHEN it fails on its last allowed attempt (max_receive_count=3)
    h.index.fail_next_writes.append(TransientError("index throttled"))
    response = process_job_batch(job_event(jobs, attempt=3), h.services())
    # THEN it goes to the DLQ with its reason and attempt count, and is done
    assert failures(response) == []
    [(body, reason, attempts)] = dead_jobs(h)
    assert json.loads(body)["doc_id"] == "d1"
    assert "index throttled" in reason
    assert attempts == 3


def test_without_a_dlq_every_failure_is_reported() -> None:
    h = Harness()
    h.write("d1", body=BODY)
    jobs = h.classify()
    h.index.fail_next_writes.append(TransientError("index throttled"))
    assert failures(process_job_batch(job_event(jobs, attempt=99), h.services())) == ["m0"]
    bad = process_job_batch({"Records": [sqs_record("{}", "b0")]}, h.services())
    assert failures(bad) == ["b0"]
