"""Differential tests: random operation sequences applied to a fake and to its adapter in
lockstep; after every step both must answer alike (same result or the same error type). The
contract suites pin chosen behaviours; these find the ones nobody thought to pin.

Integration only (moto): the fakes alone have nothing to compare with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dynembed.core.models import ReconcileJob
from dynembed.core.ports import LedgerEntry
from tests.fakes import InMemoryHeldJobs, InMemoryLedger
from tests.plugins.aws import MotoAws

pytestmark = pytest.mark.integration

DOCS = st.sampled_from(["a", "b", "c"])
GENS = st.sampled_from(["g1", "g2"])
KEYS = st.lists(st.sampled_from(["k0", "k1", "k2", "k3"]), max_size=3, unique=True)
VERSIONS = st.integers(0, 6)
SETTINGS = settings(
    max_examples=30, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", call())
    except Exception as exc:  # the error's type is the observable behaviour
        return ("raised", type(exc).__name__)


_moto: MotoAws | None = None


@pytest.fixture
def moto(moto_aws: MotoAws) -> Iterator[MotoAws]:
    global _moto
    _moto = moto_aws
    yield moto_aws
    _moto = None


def _aws() -> MotoAws:
    assert _moto is not None, "the moto fixture starts the mock"
    return _moto


class LedgerLockstep(RuleBasedStateMachine):
    @initialize()
    def tables(self) -> None:
        from dynembed.adapters.dynamodb.ledger import DynamoLedger

        self.fake = InMemoryLedger()
        aws = _aws()
        self.real = DynamoLedger(aws.table("doc_id", "generation"), region=aws.region)

    def both(self, method: str, *args: Any) -> None:
        a = outcome(lambda: getattr(self.fake, method)(*args))
        b = outcome(lambda: getattr(self.real, method)(*args))
        assert a == b, f"{method}{args}: fake {a}, adapter {b}"

    @rule(doc=DOCS, gen=GENS, keys=KEYS, version=VERSIONS)
    def begin(self, doc: str, gen: str, keys: list[str], version: int) -> None:
        self.both("begin", doc, gen, keys, version)

    @rule(
        doc=DOCS,
        gen=GENS,
        keys=KEYS,
        pending=KEYS,
        version=VERSIONS,
        deleted=st.booleans(),
        updated=st.none() | st.just(1_700_000_000.0),
    )
    def commit(
        self,
        doc: str,
        gen: str,
        keys: list[str],
        pending: list[str],
        version: int,
        deleted: bool,
        updated: float | None,
    ) -> None:
        entry = LedgerEntry(
            doc,
            gen,
            source_version=version,
            chunk_keys=keys,
            pending_keys=pending,
            attrs_hash="h",
            state="deleted" if deleted else "committed",
            source_updated_at=updated,
            indexed_at=5.0,
        )
        self.both("commit", entry)

    @rule(gen=GENS)
    def delete_generation(self, gen: str) -> None:
        self.both("delete_generation", gen)

    @invariant()
    def same_entries(self) -> None:
        if not hasattr(self, "fake"):
            return
        for gen in ("g1", "g2"):
            fake = sorted(self.fake.scan(gen), key=lambda e: e.doc_id)
            real = sorted(self.real.scan(gen), key=lambda e: e.doc_id)
            assert fake == real


class HeldJobsLockstep(RuleBasedStateMachine):
    @initialize()
    def tables(self) -> None:
        from dynembed.adapters.dynamodb.held_jobs import DynamoHeldJobs

        self.fake = InMemoryHeldJobs()
        aws = _aws()
        self.real = DynamoHeldJobs(aws.table("doc_id"), region=aws.region)
        self.now = 1000.0

    @rule(
        doc=DOCS,
        version=VERSIONS,
        delay=st.sampled_from([1, 30]),
        updated=st.none() | st.just(900.0),
        wait=st.integers(0, 20),
    )
    def hold(self, doc: str, version: int, delay: int, updated: float | None, wait: int) -> None:
        self.now += wait
        job = ReconcileJob(doc_id=doc, min_source_version=version, source_updated_at=updated, enqueued_at=1.0)
        self.fake.hold(job, delay, now=self.now)
        self.real.hold(job, delay, now=self.now)

    @rule(doc=DOCS, version=VERSIONS)
    def release(self, doc: str, version: int) -> None:
        job = ReconcileJob(doc_id=doc, min_source_version=version, enqueued_at=1.0)
        assert self.fake.release(job) == self.real.release(job)

    @invariant()
    def same_jobs(self) -> None:
        if not hasattr(self, "fake"):
            return

        def seen(held: Any, flush_all: bool) -> list[tuple[str, int, float | None, int]]:
            return sorted(
                (j.doc_id, j.min_source_version, j.source_updated_at, edits)
                for j, edits in held.due(now=self.now, flush_all=flush_all)
            )

        for flush_all in (False, True):
            assert seen(self.fake, flush_all) == seen(self.real, flush_all)
        assert self.fake.count() == self.real.count()


def test_the_ledger_fake_and_adapter_agree_on_random_histories(moto: MotoAws) -> None:
    LedgerLockstep.TestCase.settings = SETTINGS
    LedgerLockstep.TestCase().runTest()


def test_the_held_jobs_fake_and_adapter_agree_on_random_histories(moto: MotoAws) -> None:
    HeldJobsLockstep.TestCase.settings = SETTINGS
    HeldJobsLockstep.TestCase().runTest()
