"""Workflow steps and the job pipeline over ports only (fakes here): one step table, retire
through the declared ledger port, catch-up through the queue's depth, dead letters with their
reason, reports stored where they last and metrics by generation through Telemetry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynembed.core.config import Settings
from dynembed.core.errors import ConfigError
from dynembed.core.models import GenerationStatus, ReconcileJob
from dynembed.core.ports import LedgerEntry
from dynembed.core.telemetry import Telemetry
from dynembed.rebuild import steps
from dynembed.rebuild.evaluate import publish_metrics, store_markdown
from dynembed.rebuild.generations import new_generation
from dynembed.rebuild.inputs import parse_rebuild_input
from dynembed.rebuild.progress import BackfillProgress, SegmentProgress
from dynembed.sync.pipeline import process_job_batch
from dynembed.wiring import Services
from tests.fakes import InMemoryBlobs, InMemoryJobDeadLetters, RecordingMetricsSink
from tests.harness import Harness
from tests.unit.test_evaluation import build_report

pytestmark = pytest.mark.unit


def services(h: Harness, **settings: Any) -> Services:
    svc = h.services()
    svc.settings = Settings(**settings)
    return svc


def candidate(h: Harness, gen_id: str, status: GenerationStatus) -> str:
    gen = new_generation(h.embedder.spec, h.chunker, h.index_prefix, generation_id=gen_id)
    h.registry.put(gen.model_copy(update={"status": status}))
    h.index.ensure_index(gen)
    return gen.id


def test_an_unknown_step_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown workflow step 'nope'; known steps: add_write_target, "):
        steps.run_step({"step": "nope"}, Harness().services())


def test_retire_deletes_the_generations_ledger_rows_through_the_port() -> None:
    # GIVEN a failed candidate with ledger rows beside the active generation's
    h = Harness()
    h.write("d1", body="hello")
    h.run()
    gen_id = candidate(h, "g2", GenerationStatus.FAILED)
    for doc in ("d1", "d2"):
        h.ledger.commit(LedgerEntry(doc, gen_id, source_version=1, chunk_keys=["k"]))
    # WHEN it is retired
    out = steps.run_step({"step": "retire", "generation_id": gen_id}, h.services())
    # THEN its rows are counted and gone, and the active generation's stay
    assert out == {"generation_id": gen_id, "status": "retired", "ledger_rows_deleted": 2}
    assert list(h.ledger.scan(gen_id)) == []
    assert [e.doc_id for e in h.ledger.scan("g1")] == ["d1"]


def test_catch_up_waits_while_the_jobs_queue_holds_work() -> None:
    # GIVEN a candidate whose backfill is done and one job still in the queue
    h = Harness()
    gen_id = candidate(h, "g2", GenerationStatus.BUILDING)
    progress = BackfillProgress.fresh(1, 10).model_copy(update={"segments": {0: SegmentProgress(done=True)}})
    h.registry.update(gen_id, backfill=progress.record())
    h.queue.send([ReconcileJob(doc_id="d1", min_source_version=1)])
    config = parse_rebuild_input({"model": "hash-256", "generation_id": gen_id})
    # WHEN the catch-up is checked
    out = steps.catchup_status(h.services(), config, checks=0)
    # THEN it is not caught up, and it enqueued no repairs while jobs are pending
    assert (out["caught_up"], out["pending_jobs"], out["repairs_enqueued"]) == (False, 1, 0)


def sqs_event(*bodies: tuple[str, int]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{n}",
                "receiptHandle": f"r{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(attempts)},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dynembed-jobs",
                "awsRegion": "us-east-1",
            }
            for n, (body, attempts) in enumerate(bodies)
        ]
    }


def test_jobs_that_can_never_succeed_are_dead_lettered_with_their_reason() -> None:
    # GIVEN a malformed job on its first attempt and a valid one
    h = Harness()
    h.write("d1", body="hello")
    h.classify()
    good = h.queue.sent.pop().model_dump_json()
    svc = h.services()
    letters = InMemoryJobDeadLetters()
    svc.__dict__["job_dead_letters"] = letters
    # WHEN the batch is processed
    response = process_job_batch(sqs_event(('{"doc_id": "d9"}', 1), (good, 1)), svc)
    # THEN the malformed one went to the DLQ with why (and is not retried); the good one synced
    assert response == {"batchItemFailures": []}
    ((body, reason, attempts),) = letters.sent
    assert json.loads(body) == {"doc_id": "d9"} and attempts == 1
    assert reason.startswith("MalformedRecordError: doc 'd9': invalid reconcile job")
    assert not any(h.differences().values())


def test_the_report_is_stored_where_it_lasts_and_its_metrics_carry_the_generation() -> None:
    # GIVEN services whose reports go to S3
    h = Harness()
    svc = services(h, reports_dir="s3://reports-bucket/reports/")
    blobs = InMemoryBlobs()
    svc.__dict__["blobs"] = blobs
    report = build_report()
    # WHEN the report is stored and its metrics published
    location = store_markdown(report, "gen-b", svc)
    sink = RecordingMetricsSink()
    publish_metrics(report, "gen-b", Telemetry(sink=sink))
    # THEN the registry gets an S3 location that holds the Markdown
    assert location == "s3://reports-bucket/reports/gen-b.md"
    assert blobs.objects[location].decode() == report.to_markdown()
    # AND every metric went out with the generation dimension
    names = {name for name, _, _, dims in sink.points if dims == {"generation": "gen-b"}}
    assert names == {"EvalNdcgAt10", "EvalRecallAt10", "EvalMrrAt10", "EvalLatencyP95", "EvalCoverage"}
    assert len(sink.points) == len(names)


def test_without_a_reports_location_the_step_says_which_variable_to_set() -> None:
    svc = services(Harness())
    with pytest.raises(ConfigError, match="DYNEMBED_REPORTS_DIR is not set"):
        store_markdown(build_report(), "gen-b", svc)
