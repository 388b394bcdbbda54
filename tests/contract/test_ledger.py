"""The Ledger port's contract, on InMemoryLedger and on DynamoLedger (moto): versions only rise,
pending keys are findable until their own commit clears them, and a delete at a version wins
over a reconcile that read that same version (DESIGN.md I2, I3)."""

from __future__ import annotations

import time

import pytest

from dynembed.core.errors import VersionConflictError
from dynembed.core.ports import Ledger, LedgerEntry


def committed(doc_id: str, version: int, keys: list[str], **extra: object) -> LedgerEntry:
    return LedgerEntry(doc_id, "g1", source_version=version, chunk_keys=keys, **extra)  # type: ignore[arg-type]


class TestGetAndScan:
    def test_unknown_entry_reads_as_none(self, ledger: Ledger) -> None:
        # GIVEN an empty ledger  WHEN an entry is read  THEN there is none
        assert ledger.get("d1", "g1") is None
        assert ledger.get_many([("d1", "g1")]) == {}

    def test_commit_then_read_back_every_field(self, ledger: Ledger) -> None:
        # GIVEN a committed entry with every field set
        entry = committed(
            "d1",
            3,
            ["k1", "k0"],
            attrs_hash="h",
            source_updated_at=1_700_000_000.5,
            indexed_at=1_700_000_001.0,
        )
        ledger.commit(entry)
        # WHEN it is read back, alone and in a batch
        got = ledger.get("d1", "g1")
        # THEN every field is as written, the chunk keys in their order
        assert got == LedgerEntry(
            "d1", "g1", 3, ["k1", "k0"], [], "h", "committed", 1_700_000_000.5, 1_700_000_001.0
        )
        assert ledger.get_many([("d1", "g1"), ("d1", "g1"), ("d2", "g1")]) == {("d1", "g1"): got}

    def test_scan_yields_one_generation_only(self, ledger: Ledger) -> None:
        # GIVEN entries in two generations
        for doc in ("a", "b", "c"):
            ledger.commit(committed(doc, 1, ["k"]))
        ledger.commit(LedgerEntry("a", "g2", source_version=1, chunk_keys=["k"]))
        # WHEN one generation is scanned  THEN only its entries come back
        assert sorted(e.doc_id for e in ledger.scan("g1")) == ["a", "b", "c"]
        assert [(e.doc_id, e.generation) for e in ledger.scan("g2")] == [("a", "g2")]
        assert list(ledger.scan("g3")) == []

    def test_delete_generation_removes_its_rows_only(self, ledger: Ledger) -> None:
        # GIVEN three entries in g1 and one in g2
        for doc in ("a", "b", "c"):
            ledger.commit(committed(doc, 1, ["k"]))
        ledger.commit(LedgerEntry("a", "g2", source_version=1, chunk_keys=["k"]))
        # WHEN g1 is deleted  THEN its three rows go, g2's stays
        assert ledger.delete_generation("g1") == 3
        assert list(ledger.scan("g1")) == []
        assert ledger.get("a", "g2") is not None
        assert ledger.delete_generation("g1") == 0


class TestBeginAndCommit:
    def test_begin_records_pending_keys_before_any_commit(self, ledger: Ledger) -> None:
        # WHEN a first write begins  THEN its keys are findable, nothing else is known yet
        ledger.begin("d1", "g1", ["k2", "k1"], 1)
        got = ledger.get("d1", "g1")
        assert got is not None
        assert (got.pending_keys, got.chunk_keys, got.source_version, got.state) == (
            ["k1", "k2"],
            [],
            -1,
            "committed",
        )

    def test_begin_without_keys_writes_nothing(self, ledger: Ledger) -> None:
        ledger.begin("d1", "g1", [], 1)
        assert ledger.get("d1", "g1") is None

    def test_commit_clears_only_its_own_pending_keys(self, ledger: Ledger) -> None:
        # GIVEN two concurrent runs that each began their keys
        ledger.begin("d1", "g1", ["a", "b"], 1)
        ledger.begin("d1", "g1", ["c"], 1)
        # WHEN the first commits
        ledger.commit(committed("d1", 1, ["a", "b"], pending_keys=["a", "b"]))
        # THEN the other run's key is still pending
        got = ledger.get("d1", "g1")
        assert got is not None and got.pending_keys == ["c"] and got.chunk_keys == ["a", "b"]

    def test_commit_defaults_indexed_at_to_now(self, ledger: Ledger) -> None:
        before = time.time()
        ledger.commit(committed("d1", 1, ["a"]))
        got = ledger.get("d1", "g1")
        assert got is not None and got.indexed_at is not None and before <= got.indexed_at <= time.time() + 1

    def test_commit_without_change_time_keeps_the_recorded_one(self, ledger: Ledger) -> None:
        # GIVEN an entry that knows when its source changed
        ledger.commit(committed("d1", 1, ["a"], source_updated_at=100.0))
        # WHEN a later commit does not know (e.g. an attribute patch)
        ledger.commit(committed("d1", 2, ["a"]))
        # THEN the known change time is kept
        got = ledger.get("d1", "g1")
        assert got is not None and got.source_updated_at == 100.0 and got.source_version == 2

    def test_commit_at_the_same_version_is_idempotent(self, ledger: Ledger) -> None:
        ledger.commit(committed("d1", 2, ["a"]))
        ledger.commit(committed("d1", 2, ["a", "b"]))
        got = ledger.get("d1", "g1")
        assert got is not None and got.chunk_keys == ["a", "b"]


class TestVersionsOnlyRise:
    def test_commit_of_an_older_version_conflicts_and_changes_nothing(self, ledger: Ledger) -> None:
        # GIVEN version 5 committed
        ledger.commit(committed("d1", 5, ["new"]))
        # WHEN a late reconcile of version 4 commits  THEN it conflicts and v5 stays
        with pytest.raises(VersionConflictError):
            ledger.commit(committed("d1", 4, ["old"]))
        got = ledger.get("d1", "g1")
        assert got is not None and (got.source_version, got.chunk_keys) == (5, ["new"])

    def test_begin_of_an_older_version_conflicts(self, ledger: Ledger) -> None:
        ledger.commit(committed("d1", 5, ["new"]))
        with pytest.raises(VersionConflictError):
            ledger.begin("d1", "g1", ["old"], 4)
        got = ledger.get("d1", "g1")
        assert got is not None and got.pending_keys == []

    def test_a_delete_beats_a_reconcile_of_the_same_version_I3(self, ledger: Ledger) -> None:
        # GIVEN the doc deleted at version 3
        ledger.commit(LedgerEntry("d1", "g1", source_version=3, chunk_keys=[], state="deleted"))
        # WHEN a reconcile that read version 3 just before the delete begins or commits
        with pytest.raises(VersionConflictError):
            ledger.begin("d1", "g1", ["k"], 3)
        with pytest.raises(VersionConflictError):
            ledger.commit(committed("d1", 3, ["k"]))
        # THEN the delete stands; a recreation at version 4 is accepted
        got = ledger.get("d1", "g1")
        assert got is not None and got.state == "deleted"
        ledger.commit(committed("d1", 4, ["k"]))

    def test_a_delete_at_the_committed_version_is_accepted(self, ledger: Ledger) -> None:
        # GIVEN version 3 committed  WHEN the doc is deleted at that version (a REMOVE record)
        ledger.commit(committed("d1", 3, ["k"]))
        ledger.commit(
            LedgerEntry("d1", "g1", source_version=3, chunk_keys=[], pending_keys=["k"], state="deleted")
        )
        # THEN it is deleted; an older delete is refused
        got = ledger.get("d1", "g1")
        assert got is not None and got.state == "deleted"
        with pytest.raises(VersionConflictError):
            ledger.commit(LedgerEntry("d1", "g1", source_version=2, state="deleted"))
