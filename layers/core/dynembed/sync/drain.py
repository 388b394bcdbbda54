"""Batched update policy: held jobs (coalesced per doc) go to the jobs queue once due, or all at
once when too many are held. Run on a schedule (EventBridge) and by the local runtime."""

from __future__ import annotations

import time
from dataclasses import dataclass

from dynembed.core.ports import HeldJobs, JobQueue
from dynembed.core.schema import SourceSchema


@dataclass
class DrainReport:
    drained: int = 0
    coalesced_edits: int = 0
    still_held: int = 0


def drain_held_jobs(
    held: HeldJobs, queue: JobQueue, schema: SourceSchema, now: float | None = None
) -> DrainReport:
    now = time.time() if now is None else now
    thresholds = [schema.default_policy.max_held_jobs] + [p.max_held_jobs for p in schema.policies.values()]
    flush_all = held.count() >= min(thresholds)
    report = DrainReport()
    due = held.due(now=now, flush_all=flush_all)
    if due:
        queue.send([job.model_copy(update={"enqueued_at": now}) for job, _ in due])
    for job, edits in due:
        if held.release(job):
            report.drained += 1
            report.coalesced_edits += edits
    report.still_held = held.count()
    return report
