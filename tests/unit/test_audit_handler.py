"""The deployed audit is read-only on the index: a repair enqueues reconcile jobs and leaves
stray chunks in place (its role may not write); the CLI's audit still deletes them."""

from __future__ import annotations

import pytest

from dynembed_ops.local.lambda_runtime import LocalLambdaContext, load_handler
from tests.harness import Harness

pytestmark = pytest.mark.unit


def _drifted() -> Harness:
    # GIVEN one doc whose source item vanished without a stream record (its chunks are orphans)
    # and one doc changed in the source but never synced (stale)
    h = Harness()
    h.write("gone", title="Gone doc", body="soon orphaned text")
    h.write("stale", title="Stale doc", body="first text")
    h.run()
    h.source.items.pop("gone")
    h.write("stale", body="second text")
    h.records.clear()
    return h


def test_audit_function_repair_enqueues_jobs_but_never_writes_the_index() -> None:
    h = _drifted()
    before = {name: dict(chunks) for name, chunks in h.index.indices.items()}
    # WHEN the audit function runs with repair
    report = load_handler("audit")(
        {"repair": True}, LocalLambdaContext(function_name="dynembed-audit"), svc=h.services()
    )
    # THEN it found the drift, enqueued the stale doc, and deleted nothing
    assert report["totals"]["orphaned_vectors"] > 0
    assert report["totals"]["stale_documents"] == 1
    assert report["orphans_deleted"] == 0
    assert [job.doc_id for job in h.queue.sent] == ["stale"]
    assert h.index.indices == before


def test_audit_run_with_repair_still_deletes_strays_where_the_caller_may_write() -> None:
    h = _drifted()
    report = h.services().audit(queue=h.queue, repair=True)
    assert report.orphans_deleted > 0
