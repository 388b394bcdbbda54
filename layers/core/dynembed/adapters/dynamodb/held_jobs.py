"""Held jobs on DynamoDB (batched update policy): one item per doc, so ten edits of one doc
become one reconcile."""

from __future__ import annotations

import time

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model

from dynembed.adapters.dynamodb.tables import bind, is_condition_failure
from dynembed.core.models import ReconcileJob


class HeldJobModel(Model):
    """A batched-policy reconcile job waiting for its drain; one per doc (coalesced)."""

    class Meta:
        table_name = "dynembed-held-jobs"

    doc_id = UnicodeAttribute(hash_key=True)
    min_source_version = NumberAttribute()
    first_held_at = NumberAttribute()
    due_at = NumberAttribute()
    source_updated_at = NumberAttribute(null=True)
    edits = NumberAttribute(default=1)
    job = UnicodeAttribute()  # the newest ReconcileJob JSON


class DynamoHeldJobs:
    def __init__(self, table_name: str, *, region: str, host: str | None = None) -> None:
        self.model = bind(HeldJobModel, table_name, region, host)

    def hold(self, job: ReconcileJob, max_delay_s: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        m = self.model
        row = m(job.doc_id)
        # First edit sets the clock; later edits only raise the version and keep the job newest.
        row.update(
            actions=[
                m.first_held_at.set(m.first_held_at | now),
                m.due_at.set(m.due_at | now + max_delay_s),
                m.source_updated_at.set(m.source_updated_at | (job.source_updated_at or now)),
                m.min_source_version.set(job.min_source_version),
                m.job.set(job.model_dump_json()),
                m.edits.add(1),
            ]
        )

    def due(self, now: float | None = None, flush_all: bool = False) -> list[tuple[ReconcileJob, int]]:
        now = time.time() if now is None else now
        out = []
        for row in self.model.scan(consistent_read=True):
            if flush_all or row.due_at <= now:
                job = ReconcileJob.model_validate_json(row.job)
                job.source_updated_at = row.source_updated_at
                out.append((job, int(row.edits or 1)))
        return out

    def count(self) -> int:
        return sum(1 for _ in self.model.scan(attributes_to_get=["doc_id"]))

    def release(self, job: ReconcileJob) -> bool:
        try:
            self.model(job.doc_id).delete(condition=self.model.min_source_version <= job.min_source_version)
            return True
        except PynamoDBException as exc:
            if is_condition_failure(exc):
                return False
            raise
