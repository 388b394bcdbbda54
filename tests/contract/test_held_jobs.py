"""The HeldJobs port's contract (batched update policy), on InMemoryHeldJobs and on
DynamoHeldJobs (moto): one held job per doc, due from its first edit, released only if no newer
edit came in meanwhile."""

from __future__ import annotations

from dynembed.core.models import ReconcileJob
from dynembed.core.ports import HeldJobs


def job(doc_id: str, version: int, updated_at: float | None = None, reason: str = "content") -> ReconcileJob:
    return ReconcileJob(
        doc_id=doc_id, min_source_version=version, source_updated_at=updated_at, reason=reason
    )


def test_nothing_held(held: HeldJobs) -> None:
    assert held.count() == 0
    assert held.due(now=1e12, flush_all=True) == []


def test_a_held_job_is_due_after_its_delay_not_before(held: HeldJobs) -> None:
    # GIVEN a job held at t=100 for 60 s
    held.hold(job("d1", 1, updated_at=90.0), 60, now=100.0)
    # THEN it is not due at 159, due at 160; flush_all takes it any time
    assert held.due(now=159.0) == []
    [(due, edits)] = held.due(now=160.0)
    assert (due.doc_id, due.min_source_version, due.source_updated_at, edits) == ("d1", 1, 90.0, 1)
    assert [j.doc_id for j, _ in held.due(now=0.0, flush_all=True)] == ["d1"]
    assert held.count() == 1


def test_edits_coalesce_keeping_the_first_clock_and_the_last_job(held: HeldJobs) -> None:
    # GIVEN three edits of one doc, 10 s apart
    held.hold(job("d1", 1, updated_at=99.0, reason="first"), 60, now=100.0)
    held.hold(job("d1", 2, updated_at=109.0, reason="second"), 60, now=110.0)
    held.hold(job("d1", 3, updated_at=119.0, reason="third"), 60, now=120.0)
    # THEN one job is held: due 60 s after the FIRST edit, timed from the first change, the newest job
    assert held.count() == 1
    assert held.due(now=159.0) == []
    [(due, edits)] = held.due(now=160.0)
    assert (due.min_source_version, due.reason, due.source_updated_at, edits) == (3, "third", 99.0, 3)


def test_a_job_without_a_change_time_is_timed_from_its_hold(held: HeldJobs) -> None:
    held.hold(job("d1", 1), 5, now=100.0)
    [(due, _)] = held.due(now=105.0)
    assert due.source_updated_at == 100.0


def test_release_removes_a_drained_job(held: HeldJobs) -> None:
    held.hold(job("d1", 2), 0, now=100.0)
    held.hold(job("d2", 1), 0, now=100.0)
    [drained] = [j for j, _ in held.due(now=100.0) if j.doc_id == "d1"]
    assert held.release(drained) is True
    assert held.count() == 1
    assert [j.doc_id for j, _ in held.due(now=100.0)] == ["d2"]


def test_release_keeps_a_job_that_a_newer_edit_replaced(held: HeldJobs) -> None:
    # GIVEN a drain read version 1, then a newer edit was held before the release
    held.hold(job("d1", 1), 0, now=100.0)
    [(drained, _)] = held.due(now=100.0)
    held.hold(job("d1", 2), 0, now=101.0)
    # WHEN the drain releases what it read  THEN the newer edit stays held
    assert held.release(drained) is False
    [(still, edits)] = held.due(now=101.0)
    assert (still.min_source_version, edits) == (2, 2)


def test_release_of_a_job_that_is_not_held(held: HeldJobs) -> None:
    assert held.release(job("ghost", 1)) is False
    assert held.count() == 0


def test_a_released_doc_starts_a_new_clock(held: HeldJobs) -> None:
    held.hold(job("d1", 1), 60, now=100.0)
    [(drained, _)] = held.due(now=160.0)
    held.release(drained)
    held.hold(job("d1", 2), 60, now=500.0)
    assert held.due(now=559.0) == []
    [(due, edits)] = held.due(now=560.0)
    assert (due.min_source_version, edits) == (2, 1)
