"""Properties, whatever the operations and delivery faults:

- access fails closed: at every step, once classify has returned for every record of a doc, no
  principal reads a chunk of it that its current source item does not grant, and nothing of a
  deleted, tombstoned or malformed item is readable;
- convergence: after draining, the index equals an independent oracle (the current source,
  chunked from scratch) for every doc whose source behaved (0 stale, 0 orphaned, 0 missing,
  0 duplicate). A doc whose source went back in version and has not changed since cannot match
  the source (the index cannot go back); it is held to the access rule only.

Operations include what a misbehaving source app does: versions going back, malformed writes in
between good ones (no version, "abc", 1e30), attributes of the wrong type (an ACL as a map, a
number or a number set; a tenant as a map; a body as a number; metadata as a map).

Runs on in-memory fakes; tests/integration/test_sync_stateful_osmem.py runs the same machine on
moto + osmem-server."""

from __future__ import annotations

import os
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dynembed.core.errors import MalformedRecordError, TransientError
from tests.harness import Harness, paragraphs

pytestmark = pytest.mark.unit

DOCS = st.sampled_from(["a", "b", "c"])
WORDS = st.lists(
    st.sampled_from(["red", "green", "blue", "cyan", "gold", "pink", "teal"]), min_size=1, max_size=6
)
ACLS = st.sampled_from([["public"], ["staff"], ["public", "staff"], []])
BREAKAGES = st.sampled_from(
    [
        {"version": None},
        {"version": "abc"},
        {"version": Decimal("1E+30")},
        {"acl": {"staff": True}},
        {"acl": Decimal(5)},
        {"acl": {Decimal(1), Decimal(2)}},
        {"tenant": {"name": "acme"}},
        {"body": Decimal(7)},
        {"category": {"a": "b"}},
    ]
)
"""Malformed writes: what a buggy source app (or the AWS CLI) can put in the table."""


class SyncMachine(RuleBasedStateMachine):
    """Operations write the source; delivery rules move stream records and jobs with faults."""

    def __init__(self) -> None:
        super().__init__()
        self.h = self.make_harness()
        self.jobs: list = []
        self.dead_jobs: list = []
        self.rng = random.Random(0)
        self.regressed: set[str] = set()
        """Docs whose source went back and has not changed what the index reads since."""

    def make_harness(self) -> Harness:
        return Harness()

    # ---- source operations ---------------------------------------------------------------------
    def _changed(self, doc: str, write: Any) -> None:
        """Apply a write; a doc stops being 'regressed' once a write changes what the index reads
        (that write brings it back: a content job, or a patch that notices)."""
        before = _view(self.h, self.h.source.items.get(doc))
        write()
        if _view(self.h, self.h.source.items.get(doc)) != before:
            self.regressed.discard(doc)

    @rule(doc=DOCS, words=WORDS, acl=ACLS)
    def write_content(self, doc: str, words: list[str], acl: list[str]) -> None:
        """An edit of the body; a doc (re-)created this way gets ``acl``."""
        created = {} if doc in self.h.source.items else {"acl": acl}
        self._changed(doc, lambda: self.h.write(doc, body=paragraphs(*words, size=12), **created))

    @rule(doc=DOCS, acl=ACLS)
    def change_access(self, doc: str, acl: list[str]) -> None:
        if doc in self.h.source.items:
            self._changed(doc, lambda: self.h.write(doc, acl=acl))

    @rule(doc=DOCS, category=st.sampled_from(["x", "y"]))
    def change_metadata(self, doc: str, category: str) -> None:
        if doc in self.h.source.items:
            self._changed(doc, lambda: self.h.write(doc, category=category))

    @rule(doc=DOCS)
    def delete(self, doc: str) -> None:
        if doc in self.h.source.items:
            self.h.remove(doc)
            self.regressed.discard(doc)

    @rule(doc=DOCS, archived=st.booleans())
    def archive(self, doc: str, archived: bool) -> None:
        if doc in self.h.source.items:
            self._changed(doc, lambda: self.h.write(doc, status="archived" if archived else "live"))

    @rule(doc=DOCS, back=st.integers(0, 2), acl=ACLS, words=st.none() | WORDS)
    def go_back(self, doc: str, back: int, acl: list[str], words: list[str] | None) -> None:
        """The app writes an older (or the same) version, with an ACL and maybe a body."""
        if doc not in self.h.source.items:
            return
        attrs: dict[str, Any] = {"version": max(0, self.h.high.get(doc, 0) - back), "acl": acl}
        if words is not None:
            attrs["body"] = paragraphs(*words, size=12)
        self.h.put(doc, attrs)
        self.regressed.add(doc)

    @rule(doc=DOCS, breakage=BREAKAGES)
    def malformed_write(self, doc: str, breakage: dict[str, Any]) -> None:
        """A write the schema refuses (it stays until a later write overwrites the attribute)."""
        self._changed(doc, lambda: self.h.put(doc, {"version": self.h.high.get(doc, 0) + 1, **breakage}))

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
            if isinstance(outcome.error, MalformedRecordError):
                self.dead_jobs.append(outcome.job)  # permanent: the sync handler dead-letters it
                if outcome.job in self.jobs:
                    self.jobs.remove(outcome.job)
            elif not outcome.ok and outcome.job not in self.jobs:
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
        assert self.h.access_violations() == []
        assert self.h.differences(exclude=self.regressed) == CLEAN

    @invariant()
    def never_an_unaccounted_chunk(self) -> None:
        """At every step, each indexed chunk is in its doc's ledger (committed or pending)."""
        for cid, chunk in self.h.indexed().items():
            entry = self.h.ledger.get(chunk["doc_id"], "g1")
            assert entry is not None, cid
            assert chunk["chunk_key"] in set(entry.chunk_keys) | set(entry.pending_keys), cid

    @invariant()
    def no_one_reads_what_the_current_source_does_not_grant(self) -> None:
        """Once classify has returned for every record of a doc, the index grants no principal
        more than the doc's current item does, and serves nothing of a deleted or malformed one."""
        pending = {r["dynamodb"]["Keys"]["doc_id"]["S"] for r in self.h.records}
        assert self.h.access_violations({"a", "b", "c"} - pending) == []


CLEAN = {"orphaned": [], "missing": [], "stale": [], "duplicates": []}


def _view(h: Harness, item: dict[str, Any] | None) -> Any:
    """What the index reads of an item, independently of classify: its text, ACL set, tenant,
    metadata and tombstone flag, or that it is malformed or absent."""
    if item is None:
        return None
    if h.schema.problems(item):
        return "malformed"
    return (
        tuple(h.schema.content_of(item)),
        frozenset(h.schema.acl_of(item)),
        h.schema.tenant_of(item),
        repr(h.schema.metadata_of(item)),
        item.get("status") == "archived",
    )


class IsolatedSyncMachine(SyncMachine):
    """The same machine on a schema that isolates tenants: docs carry a tenant, move between
    tenants, and lose it (an item without a tenant is malformed there, so it must be hidden)."""

    def make_harness(self) -> Harness:
        return Harness(schema=Harness().schema.model_copy(update={"tenant_isolation": True}))

    @rule(doc=DOCS, words=WORDS, acl=ACLS, tenant=st.sampled_from(["acme", "globex"]))
    def write_content(self, doc: str, words: list[str], acl: list[str], tenant: str) -> None:
        created = {} if doc in self.h.source.items else {"acl": acl, "tenant": tenant}
        self._changed(doc, lambda: self.h.write(doc, body=paragraphs(*words, size=12), **created))

    @rule(doc=DOCS, tenant=st.sampled_from(["acme", "globex", None]))
    def change_tenant(self, doc: str, tenant: str | None) -> None:
        """A move to another tenant, or a write that drops the tenant (malformed here)."""
        if doc in self.h.source.items:
            self._changed(doc, lambda: self.h.write(doc, tenant=tenant))


SyncMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("DYNEMBED_STATEFUL_EXAMPLES", "200")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSync = SyncMachine.TestCase
IsolatedSyncMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("DYNEMBED_STATEFUL_EXAMPLES", "200")) // 4 or 1,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIsolatedSync = IsolatedSyncMachine.TestCase
