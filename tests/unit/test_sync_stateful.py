"""Property: whatever the operations and delivery faults, after draining the index equals an
independent oracle (the current source, chunked from scratch): 0 stale, 0 orphaned, 0 missing,
0 duplicate. Runs on in-memory fakes; tests/integration/test_sync_stateful_osmem.py runs the same
machine on moto + osmem-server."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dynembed.core.errors import TransientError
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit

DOCS = st.sampled_from(["a", "b", "c"])
WORDS = st.lists(
    st.sampled_from(["red", "green", "blue", "cyan", "gold", "pink", "teal"]), min_size=1, max_size=6
)
ACLS = st.sampled_from([["public"], ["staff"], ["public", "staff"], []])


class SyncMachine(RuleBasedStateMachine):
    """Operations write the source; delivery rules move stream records and jobs with faults."""

    def __init__(self) -> None:
        super().__init__()
        self.h = self.make_harness()
        self.jobs: list = []
        self.rng = random.Random(0)

    def make_harness(self) -> Harness:
        return Harness()

    # ---- source operations ---------------------------------------------------------------------
    @rule(doc=DOCS, words=WORDS)
    def write_content(self, doc: str, words: list[str]) -> None:
        self.h.write(doc, body=paragraphs(*words, size=12))

    @rule(doc=DOCS, acl=ACLS)
    def change_access(self, doc: str, acl: list[str]) -> None:
        if doc in self.h.source.items:
            self.h.write(doc, acl=acl)

    @rule(doc=DOCS, category=st.sampled_from(["x", "y"]))
    def change_metadata(self, doc: str, category: str) -> None:
        if doc in self.h.source.items:
            self.h.write(doc, category=category)

    @rule(doc=DOCS)
    def delete(self, doc: str) -> None:
        if doc in self.h.source.items:
            self.h.remove(doc)

    @rule(doc=DOCS, archived=st.booleans())
    def archive(self, doc: str, archived: bool) -> None:
        if doc in self.h.source.items:
            self.h.write(doc, status="archived" if archived else "live")

    # ---- delivery with faults --------------------------------------------------------------------
    @precondition(lambda self: bool(self.h.records))
    @rule(n=st.integers(1, 5), redeliver=st.booleans())
    def deliver_stream(self, n: int, redeliver: bool) -> None:
        """A stream batch, in order; sometimes the batch is delivered again (a retry)."""
        batch, self.h.records = self.h.records[:n], self.h.records[n:]
        self._classify(batch)
        if redeliver:
            self._classify(batch)

    def _classify(self, batch: list) -> None:
        try:
            self.jobs += self.h.classify(batch)
        except TransientError:
            self.h.records = batch + self.h.records  # the batch fails and is retried from its start

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def deliver_jobs(self, data: st.DataObject) -> None:
        """Some jobs, shuffled, some duplicated; others stay queued."""
        picked = data.draw(st.lists(st.sampled_from(self.jobs), min_size=1, max_size=6))
        for job in picked:
            if job in self.jobs and data.draw(st.booleans()):
                self.jobs.remove(job)
        self._sync(picked)

    @precondition(lambda self: bool(self.jobs))
    @rule(k=st.integers(0, 3))
    def crash_mid_write(self, k: int) -> None:
        """The next write dies after k chunks; the job stays queued (it will be redelivered)."""
        self.h.index.crash_after = k
        self._sync([self.jobs[0]])
        self.h.index.crash_after = None

    @precondition(lambda self: bool(self.jobs))
    @rule()
    def throttled_index(self) -> None:
        self.h.index.fail_next_writes.append(TransientError("429 from the index"))
        self._sync(list(self.jobs[:2]))

    def _sync(self, jobs: list) -> None:
        for outcome in self.h.sync(list(jobs)):
            if not outcome.ok and outcome.job not in self.jobs:
                self.jobs.append(outcome.job)  # a failed message becomes visible again

    # ---- the end state -----------------------------------------------------------------------------
    def teardown(self) -> None:
        # Drain: every stream record in order, then every job until the queue is empty.
        self.h.index.fail_next_writes.clear()
        while self.h.records:
            batch, self.h.records = self.h.records, []
            self._classify(batch)
        for _ in range(10):
            if not self.jobs:
                break
            batch, self.jobs = self.jobs, []
            self._sync(batch)
        assert not self.jobs, "jobs still failing after the drain"
        assert self.h.differences() == {"orphaned": [], "missing": [], "stale": [], "duplicates": []}

    @invariant()
    def never_an_unaccounted_chunk(self) -> None:
        """At every step, each indexed chunk is in its doc's ledger (committed or pending)."""
        for cid, chunk in self.h.indexed().items():
            entry = self.h.ledger.get(chunk["doc_id"], "g1")
            assert entry is not None, cid
            assert chunk["chunk_key"] in set(entry.chunk_keys) | set(entry.pending_keys), cid


SyncMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("DYNEMBED_STATEFUL_EXAMPLES", "200")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSync = SyncMachine.TestCase
