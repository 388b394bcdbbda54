"""The drain (batched update policy) on fakes: held jobs go to the queue once due, all at once
when too many are held, and a job a newer edit replaced meanwhile stays held."""

from __future__ import annotations

import pytest

from dynembed.core.models import ReconcileJob
from dynembed.core.schema import SourceSchema, UpdateMode, UpdatePolicy
from dynembed.sync.drain import DrainReport, drain_held_jobs
from tests.fakes import InMemoryHeldJobs, InMemoryQueue

pytestmark = pytest.mark.unit

BATCHED = UpdatePolicy(mode=UpdateMode.BATCHED, max_delay_seconds=60, max_held_jobs=3)
SCHEMA = SourceSchema(default_policy=BATCHED)


def job(doc_id: str, version: int = 1) -> ReconcileJob:
    return ReconcileJob(doc_id=doc_id, min_source_version=version, enqueued_at=0.0)


class RacingHeld(InMemoryHeldJobs):
    """Held jobs where a newer edit of ``doc_id`` lands between the drain's read and its release."""

    def __init__(self, doc_id: str) -> None:
        super().__init__()
        self.racing = doc_id

    def due(self, now: float | None = None, flush_all: bool = False) -> list[tuple[ReconcileJob, int]]:
        out = super().due(now, flush_all)
        self.hold(job(self.racing, 99), 60, now)
        return out


def test_only_due_jobs_are_sent_stamped_with_the_drain_time() -> None:
    # GIVEN one job held at t=0 and one at t=50 (60 s delay each)
    held, queue = InMemoryHeldJobs(), InMemoryQueue()
    held.hold(job("early"), 60, now=0.0)
    held.hold(job("late"), 60, now=50.0)
    # WHEN the drain runs at t=61
    report = drain_held_jobs(held, queue, SCHEMA, now=61.0)
    # THEN only the early one is sent (enqueued now), and released
    assert [(j.doc_id, j.enqueued_at) for j in queue.sent] == [("early", 61.0)]
    assert report == DrainReport(drained=1, coalesced_edits=1, still_held=1)


def test_coalesced_edits_are_counted_and_sent_as_one_job() -> None:
    held, queue = InMemoryHeldJobs(), InMemoryQueue()
    for version in (1, 2, 3):
        held.hold(job("d1", version), 60, now=float(version))
    report = drain_held_jobs(held, queue, SCHEMA, now=100.0)
    assert [(j.doc_id, j.min_source_version) for j in queue.sent] == [("d1", 3)]
    assert report == DrainReport(drained=1, coalesced_edits=3, still_held=0)


def test_too_many_held_jobs_flush_all_before_they_are_due() -> None:
    # GIVEN as many held docs as the policy allows (3), none due
    held, queue = InMemoryHeldJobs(), InMemoryQueue()
    for doc in ("a", "b", "c"):
        held.hold(job(doc), 60, now=0.0)
    # WHEN the drain runs early  THEN every one is sent
    report = drain_held_jobs(held, queue, SCHEMA, now=1.0)
    assert sorted(j.doc_id for j in queue.sent) == ["a", "b", "c"]
    assert report.still_held == 0


def test_the_smallest_threshold_of_any_policy_triggers_the_flush() -> None:
    schema = SourceSchema(
        default_policy=UpdatePolicy(mode=UpdateMode.BATCHED, max_held_jobs=100),
        policies={"tenant:acme": UpdatePolicy(mode=UpdateMode.BATCHED, max_held_jobs=2)},
    )
    held, queue = InMemoryHeldJobs(), InMemoryQueue()
    held.hold(job("a"), 60, now=0.0)
    assert drain_held_jobs(held, queue, schema, now=1.0).drained == 0
    held.hold(job("b"), 60, now=0.0)
    assert drain_held_jobs(held, queue, schema, now=1.0).drained == 2


def test_nothing_due_sends_nothing() -> None:
    held, queue = InMemoryHeldJobs(), InMemoryQueue()
    held.hold(job("a"), 60, now=0.0)
    assert drain_held_jobs(held, queue, SCHEMA, now=10.0) == DrainReport(still_held=1)
    assert queue.sent == []


def test_a_job_replaced_by_a_newer_edit_during_the_drain_stays_held() -> None:
    # GIVEN a newer edit of d1 arrives while the drain sends d1's old job
    held, queue = RacingHeld("d1"), InMemoryQueue()
    held.hold(job("d1", 1), 60, now=0.0)
    # WHEN the drain runs
    report = drain_held_jobs(held, queue, SCHEMA, now=61.0)
    # THEN the old job was sent, the newer edit is still held for the next drain (nothing lost)
    assert [j.min_source_version for j in queue.sent] == [1]
    assert report == DrainReport(drained=0, coalesced_edits=0, still_held=1)
    [(kept, _)] = held.due(flush_all=True)
    assert kept.min_source_version == 99
