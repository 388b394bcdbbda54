"""End to end on the local stack: a source app writes through the real DynamoDB API, the stream
pump drives the real classify handler, the SQS pump the real sync handler, osmem holds the index."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from dynembed.core.config import METRICS
from dynembed_ops.local.stack import LocalStack
from dynembed_ops.ops import peek_dead_letters, queue_depth, redrive
from dynembed_ops.paths import FAQ_CORPUS
from dynembed_ops.source_app import SourceApp, read_jsonl, source_app_for

pytestmark = pytest.mark.e2e


def _app(stack: LocalStack) -> SourceApp:
    app: SourceApp = source_app_for(stack.services())
    return app


def _docs_for(stack: LocalStack, text: str, principal: str | list[str] = "reader") -> list[str]:
    svc = stack.services()
    response = svc.search(text, principal, k=20)
    return [r.doc_id for r in response.results]


@pytest.fixture(scope="module")
def loaded(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    docs = [doc for _, doc in read_jsonl(FAQ_CORPUS)][:40]
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in docs))
    _app(local_stack).load(path, defaults={"acl": ["public"]})
    local_stack.drain()
    return {d["doc_id"]: d for d in docs}


def test_loaded_corpus_is_searchable_with_provenance(local_stack: LocalStack, loaded: dict[str, Any]) -> None:
    # GIVEN 40 docs loaded through the source table and synced
    doc = next(iter(loaded.values()))
    # WHEN searching for the doc's own opening words
    svc = local_stack.services()
    response = svc.search(doc["body"][:200], "reader", k=5)
    # THEN it comes first, with its provenance
    top = response.results[0]
    assert top.doc_id == doc["doc_id"]
    assert top.model_id == "hash/hash-256@1:256" and top.generation == "g-hash" and top.source_version == 1
    audit = svc.audit()
    assert audit.totals()["orphaned_vectors"] == 0 and audit.totals()["missing_documents"] == 0


def test_edit_reembeds_only_what_changed(local_stack: LocalStack, loaded: dict[str, Any]) -> None:
    tel = local_stack.services().telemetry
    doc_id = next(d for d, doc in loaded.items() if len(doc["body"]) > 3000)
    before = tel.get(METRICS.embeddings_computed)
    _app(local_stack).update(
        doc_id, {"body": loaded[doc_id]["body"] + "\n\nA brand new closing paragraph about zebras."}
    )
    local_stack.drain()
    assert 1 <= tel.get(METRICS.embeddings_computed) - before <= 2
    assert doc_id in _docs_for(local_stack, "closing paragraph about zebras")


def test_access_revocation_and_delete(local_stack: LocalStack, loaded: dict[str, Any]) -> None:
    ids = list(loaded)
    revoked, deleted = ids[3], ids[4]
    app = _app(local_stack)
    tel = local_stack.services().telemetry
    before = tel.get(METRICS.embeddings_computed)
    app.update(revoked, {"acl": ["staff"]})
    app.delete(deleted)
    local_stack.drain()
    text_r, text_d = loaded[revoked]["body"][:200], loaded[deleted]["body"][:200]
    assert revoked not in _docs_for(local_stack, text_r, "reader")
    assert revoked in _docs_for(local_stack, text_r, ["staff"])
    assert deleted not in _docs_for(local_stack, text_d, ["reader", "staff"])
    assert tel.get(METRICS.embeddings_computed) == before  # I5: no embedding for access or delete


def test_each_job_delivered_several_times_converges(local_stack: LocalStack, loaded: dict[str, Any]) -> None:
    svc = local_stack.services()
    doc_id = list(loaded)[5]
    _app(local_stack).update(doc_id, {"body": loaded[doc_id]["body"] + "\n\nduplicated delivery"})
    local_stack.stream_pump.step()  # type: ignore[union-attr]
    # Deliver the same content job 4 more times.
    messages = svc.sqs.receive_message(QueueUrl=svc.settings.jobs_queue_url, MaxNumberOfMessages=10)[
        "Messages"
    ]
    for message in messages:
        svc.sqs.change_message_visibility(
            QueueUrl=svc.settings.jobs_queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
        for _ in range(4):
            svc.sqs.send_message(QueueUrl=svc.settings.jobs_queue_url, MessageBody=message["Body"])
    local_stack.drain()
    report = svc.audit()
    assert report.totals() == {
        "orphaned_vectors": 0,
        "stale_documents": 0,
        "missing_documents": 0,
        "duplicate_chunks": 0,
        "regressed_documents": 0,
        "freshness_lag_s": 0.0,
        "malformed_items": 0,
    }


def test_poison_job_reaches_the_dlq_with_its_reason_while_the_batch_commits(
    local_stack: LocalStack, loaded: dict[str, Any]
) -> None:
    svc = local_stack.services()
    good = list(loaded)[6]
    # A job whose doc has a version the schema cannot read fails every attempt.
    table = _app(local_stack).table
    table.put_item(
        Item={"doc_id": "poison", "version": "not-a-number", "title": "x", "body": "y", "acl": ["public"]}
    )
    local_stack.stream_pump.step()  # type: ignore[union-attr]  # malformed record: dead-lettered by classify
    svc.queue.send(
        [
            __import__("dynembed.core.models", fromlist=["ReconcileJob"]).ReconcileJob(
                doc_id="poison", min_source_version=0
            ),
            __import__("dynembed.core.models", fromlist=["ReconcileJob"]).ReconcileJob(
                doc_id=good, min_source_version=1, force=True
            ),
        ]
    )
    local_stack.drain()
    letters = peek_dead_letters(svc.sqs, svc.settings.jobs_dlq_url)
    assert [letter["doc_id"] for letter in letters] == ["poison"]
    assert "poison" in letters[0]["reason"] and "version" in letters[0]["reason"]
    assert good in _docs_for(local_stack, loaded[good]["body"][:200])
    # The malformed stream record went to the stream failures queue, with a reason naming the doc.
    failure = svc.sqs.receive_message(QueueUrl=svc.settings.stream_failures_queue_url, MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in failure.get("Messages", [])]
    assert any(b.get("doc_id") == "poison" and "version" in b["reason"] for b in bodies)
    # Redrive sends the job back (it fails again: the source is still bad), nothing is lost.
    assert redrive(svc.sqs, svc.settings.jobs_dlq_url, svc.settings.jobs_queue_url) == 1
    local_stack.drain()
    assert queue_depth(svc.sqs, svc.settings.jobs_dlq_url).visible == 1


def test_a_real_client_write_is_searchable_within_seconds_while_pumps_run(local_stack: LocalStack) -> None:
    assert local_stack.info is not None
    raw = boto3.client("dynamodb", endpoint_url=local_stack.info.aws_url, region_name="us-east-1")
    with local_stack.background(interval_s=0.05):
        raw.put_item(
            TableName=local_stack.services().settings.source_table,
            Item={
                "doc_id": {"S": "from-cli"},
                "version": {"N": "1"},
                "title": {"S": "Quokka handbook"},
                "body": {"S": "Quokkas are small marsupials that smile for photographs."},
                "acl": {"SS": ["public"]},
            },
        )
        deadline = time.monotonic() + 10
        while (
            "from-cli" not in _docs_for(local_stack, "quokka marsupials smile")
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert "from-cli" in _docs_for(local_stack, "quokka marsupials smile")
        raw.delete_item(
            TableName=local_stack.services().settings.source_table, Key={"doc_id": {"S": "from-cli"}}
        )
        deadline = time.monotonic() + 10
        while "from-cli" in _docs_for(local_stack, "quokka marsupials smile") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "from-cli" not in _docs_for(local_stack, "quokka marsupials smile")
