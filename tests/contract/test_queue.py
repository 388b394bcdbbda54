"""The JobQueue port's contract, on InMemoryQueue and on SqsJobQueue (moto): every job arrives
once, as it was when sent, however many are sent at once (SQS batches by ten)."""

from __future__ import annotations

from collections import Counter

from dynembed.core.models import ReconcileJob
from tests.contract.conftest import QueueUnderTest


def test_every_job_arrives_once_and_intact(queue: QueueUnderTest) -> None:
    # GIVEN 23 jobs (three SQS batches), every field set on some
    jobs = [
        ReconcileJob(
            doc_id=f"d{i}",
            min_source_version=i,
            reason="content",
            source_updated_at=1_700_000_000.25 + i,
            enqueued_at=1_700_000_100.5,
            generations=["g1"] if i % 2 else None,
            tenant="acme" if i % 3 else None,
            force=i == 7,
        )
        for i in range(23)
    ]
    # WHEN they are sent
    queue.queue.send(jobs)
    # THEN each arrives exactly once, equal to what was sent
    got = queue.received()
    assert Counter(j.model_dump_json() for j in got) == Counter(j.model_dump_json() for j in jobs)


def test_sending_nothing_sends_nothing(queue: QueueUnderTest) -> None:
    queue.queue.send([])
    assert queue.received() == []


def test_a_job_changed_after_sending_arrives_as_sent(queue: QueueUnderTest) -> None:
    # GIVEN a sent job  WHEN the sender changes its object afterwards
    sent = ReconcileJob(doc_id="d1", min_source_version=1)
    queue.queue.send([sent])
    sent.min_source_version = 99
    # THEN the queue holds what was sent
    assert [j.min_source_version for j in queue.received()] == [1]


def test_duplicates_are_delivered_as_duplicates(queue: QueueUnderTest) -> None:
    # The queue does not coalesce: that is the applier's and the reconciler's job.
    same = ReconcileJob(doc_id="d1", min_source_version=1, enqueued_at=5.0)
    queue.queue.send([same, same])
    assert len(queue.received()) == 2
