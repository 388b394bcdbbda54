"""Pure helpers split out of longer functions (issue #10): reconcile's ledger diff and its
"already current" skip, and the report fields the Evaluate step carries over from an earlier
step. The flows that use them are covered end to end elsewhere; these pin the rules alone."""

from __future__ import annotations

import pytest

from dynembed.core.models import Chunk, ChunkerSpec, Generation, ModelSpec, ReconcileJob
from dynembed.core.ports import LedgerEntry
from dynembed.rebuild.evaluate import ESTIMATE_KEY, _carried_over
from dynembed.sync.reconcile import Plan, _already_current, _diff_against_ledger

pytestmark = pytest.mark.unit

GEN = Generation(
    id="g1",
    index_name="dynembed-chunks-g1",
    model=ModelSpec(provider="local", name="m", dimension=8),
    chunker=ChunkerSpec(),
)


def chunk(key: str, index: int = 0) -> Chunk:
    return Chunk(key=key, index=index, text=key, content_hash=f"h-{key}")


def write_plan(entry: LedgerEntry | None, keys: list[str], *, version: int = 3, digest: str = "a") -> Plan:
    return Plan(
        ReconcileJob(doc_id="d1", min_source_version=version),
        GEN,
        "write",
        "reconcile",
        version=version,
        entry=entry,
        chunks=[chunk(k, i) for i, k in enumerate(keys)],
        attrs_digest=digest,
    )


def committed(
    keys: list[str], *, version: int = 3, digest: str = "a", state: str = "committed"
) -> LedgerEntry:
    return LedgerEntry(
        doc_id="d1", generation="g1", source_version=version, chunk_keys=keys, attrs_hash=digest, state=state
    )


def test_the_ledger_diff_embeds_only_chunks_the_ledger_does_not_know() -> None:
    plan = write_plan(committed(["a", "b"]), ["a", "c", "b"])
    unchanged = _diff_against_ledger(plan)
    assert [c.key for c in plan.to_embed] == ["c"]
    assert [c.key for c in unchanged] == ["a", "b"]


def test_without_a_ledger_entry_every_chunk_is_new() -> None:
    plan = write_plan(None, ["a", "b"])
    assert _diff_against_ledger(plan) == []
    assert [c.key for c in plan.to_embed] == ["a", "b"]


def test_a_committed_doc_at_this_version_with_the_same_attributes_is_current() -> None:
    plan = write_plan(committed(["a"]), ["a"])
    _diff_against_ledger(plan)
    assert _already_current(plan)


@pytest.mark.parametrize(
    ("entry", "keys", "obsolete"),
    [
        (None, ["a"], []),  # never indexed
        (committed(["a"], state="pending"), ["a"], []),  # a write in flight
        (committed(["a"], version=2), ["a"], []),  # the source moved on
        (committed(["a"], digest="b"), ["a"], []),  # attributes changed
        (committed(["a"]), ["a", "b"], []),  # a new chunk to embed
        (committed(["a", "b"]), ["a"], ["b"]),  # a chunk to remove
    ],
)
def test_anything_to_change_means_not_current(
    entry: LedgerEntry | None, keys: list[str], obsolete: list[str]
) -> None:
    plan = write_plan(entry, keys)
    plan.obsolete = obsolete
    _diff_against_ledger(plan)
    assert not _already_current(plan)


def test_the_evaluate_step_keeps_the_last_failure_and_the_estimate_with_its_approval() -> None:
    approval = {"stage": "estimate", "by": "ops"}
    previous = {"failed_reason": "gate", ESTIMATE_KEY: {"items": 3}, "approval": approval, "other": 1}
    assert _carried_over(previous) == {
        "previous_failure": "gate",
        ESTIMATE_KEY: {"items": 3},
        "estimate_approval": approval,
    }


def test_an_approval_of_another_stage_or_no_estimate_is_not_carried_over() -> None:
    assert _carried_over({ESTIMATE_KEY: {"items": 3}, "approval": {"stage": "promote"}}) == {
        ESTIMATE_KEY: {"items": 3}
    }
    assert _carried_over({"approval": {"stage": "estimate"}, "failed_reason": ""}) == {}
