"""The ledger port on DynamoDB: per (doc, generation), what that generation's index holds for
the doc. Versions only rise (conditional writes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.exceptions import DoesNotExist, PutError, PynamoDBException, UpdateError
from pynamodb.models import Model

from dynembed.adapters.dynamodb.tables import bind, is_condition_failure, raise_transient_or
from dynembed.core.errors import VersionConflictError
from dynembed.core.ports import LedgerEntry


class LedgerModel(Model):
    """Per (doc, generation): what is in that generation's index for that doc."""

    class Meta:
        table_name = "dynembed-ledger"

    doc_id = UnicodeAttribute(hash_key=True)
    generation = UnicodeAttribute(range_key=True)
    source_version = NumberAttribute(default=-1)
    chunk_keys = ListAttribute(of=UnicodeAttribute, default=list)
    pending_keys = UnicodeSetAttribute(null=True)
    attrs_hash = UnicodeAttribute(default="")
    state = UnicodeAttribute(default="committed")
    source_updated_at = NumberAttribute(null=True)
    indexed_at = NumberAttribute(null=True)


class DynamoLedger:
    """The ledger port on DynamoDB; versions only rise (conditional writes).

    A doc's first reconcile in a generation (every doc of a backfill, every new doc) takes a
    shorter path: ``get_many`` notes the rows it did not find, ``begin`` creates such a row with
    a PutItem (condition: it still does not exist) and ``commit`` replaces it with a PutItem
    (condition: still no version and exactly this run's pending keys). Each falls back to the
    general UpdateItem when its condition fails, so a racing writer changes nothing but the
    path. The write units are the same; it saves work for DynamoDB emulators, which parse update
    expressions slowly (the local stack's sync speed, docs/benchmarks.md)."""

    HINTS = 10_000

    def __init__(self, table_name: str, *, region: str, host: str | None = None) -> None:
        self.model = bind(LedgerModel, table_name, region, host)
        self._hints_lock = threading.Lock()
        self._absent: dict[tuple[str, str], None] = {}
        self._created: dict[tuple[str, str], frozenset[str]] = {}

    def _remember(self, hints: dict[Any, Any], key: tuple[str, str], value: Any) -> None:
        with self._hints_lock:
            hints[key] = value
            while len(hints) > self.HINTS:
                hints.pop(next(iter(hints)))

    def _take(self, hints: dict[Any, Any], key: tuple[str, str]) -> Any:
        with self._hints_lock:
            return hints.pop(key, None) if key in hints else False

    def _not_newer(self, version: int) -> Any:
        """No higher version, and no delete at this very version (a doc deleted at v must not
        come back from a reconcile that read v just before the delete)."""
        m = self.model
        return (
            m.source_version.does_not_exist()
            | (m.source_version < version)
            | ((m.source_version == version) & (m.state != "deleted"))
        )

    def get(self, doc_id: str, generation: str) -> LedgerEntry | None:
        try:
            row = self.model.get(doc_id, generation, consistent_read=True)
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise_transient_or(exc, f"ledger get {doc_id}")
        return _to_entry(row)

    def get_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], LedgerEntry]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        try:
            rows = list(self.model.batch_get(wanted, consistent_read=True))
        except PynamoDBException as exc:
            raise_transient_or(exc, f"ledger batch get of {len(wanted)} entries")
        found = {(row.doc_id, row.generation): _to_entry(row) for row in rows}
        for key in wanted:
            if key not in found:
                self._remember(self._absent, key, None)
        return found

    def begin(self, doc_id: str, generation: str, pending_keys: Sequence[str], source_version: int) -> None:
        if not pending_keys:
            return
        key = (doc_id, generation)
        if self._take(self._absent, key) is not False and self._create(doc_id, generation, pending_keys):
            self._remember(self._created, key, frozenset(pending_keys))
            return
        row = self.model(doc_id, generation)
        try:
            row.update(
                actions=[self.model.pending_keys.add(set(pending_keys))],
                condition=self._not_newer(source_version),
            )
        except UpdateError as exc:
            if is_condition_failure(exc):
                raise VersionConflictError(
                    f"ledger for {doc_id} in {generation} already holds a version newer than {source_version}"
                ) from exc
            raise_transient_or(exc, f"ledger begin {doc_id}")

    def _create(self, doc_id: str, generation: str, pending_keys: Sequence[str]) -> bool:
        """The row, with only its pending keys, if it still does not exist."""
        try:
            self.model(doc_id, generation, pending_keys=set(pending_keys)).save(
                condition=self.model.doc_id.does_not_exist()
            )
        except PutError as exc:
            if is_condition_failure(exc):
                return False  # created meanwhile: the general path decides
            raise_transient_or(exc, f"ledger begin {doc_id}")
        return True

    def _replace_created(self, entry: LedgerEntry, mine: frozenset[str]) -> bool:
        """Commit a row this process created, if it is still as begin left it."""
        m = self.model
        row = m(
            entry.doc_id,
            entry.generation,
            source_version=entry.source_version,
            chunk_keys=list(entry.chunk_keys),
            attrs_hash=entry.attrs_hash,
            state=entry.state,
            indexed_at=entry.indexed_at or time.time(),
            source_updated_at=entry.source_updated_at,
        )
        try:
            # The created row carries the model's defaults (version -1): still no version of its own.
            never_committed = m.source_version.does_not_exist() | (m.source_version < 0)
            row.save(condition=never_committed & (m.pending_keys == set(mine)))
        except PutError as exc:
            if is_condition_failure(exc):
                return False
            raise_transient_or(exc, f"ledger commit {entry.doc_id}")
        return True

    def commit(self, entry: LedgerEntry) -> None:
        mine = self._take(self._created, (entry.doc_id, entry.generation))
        if mine and frozenset(entry.pending_keys) == mine and self._replace_created(entry, mine):
            return
        row = self.model(entry.doc_id, entry.generation)
        actions: list[Any] = [
            self.model.source_version.set(entry.source_version),
            self.model.chunk_keys.set(list(entry.chunk_keys)),  # type: ignore[arg-type]
            self.model.attrs_hash.set(entry.attrs_hash),
            self.model.state.set(entry.state),
            self.model.indexed_at.set(entry.indexed_at or time.time()),
        ]
        if entry.source_updated_at is not None:
            actions.append(self.model.source_updated_at.set(entry.source_updated_at))
        if entry.pending_keys:
            # Only this run's pending keys: a concurrent run's stay until it commits or a later
            # reconcile deletes them as obsolete.
            actions.append(self.model.pending_keys.delete(set(entry.pending_keys)))
        try:
            if entry.state == "deleted":
                condition = self.model.source_version.does_not_exist() | (
                    self.model.source_version <= entry.source_version
                )
            else:
                condition = self._not_newer(entry.source_version)
            row.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if is_condition_failure(exc):
                raise VersionConflictError(
                    f"ledger for {entry.doc_id} in {entry.generation} holds a version newer than "
                    f"{entry.source_version}"
                ) from exc
            raise_transient_or(exc, f"ledger commit {entry.doc_id}")

    def scan(self, generation: str) -> Iterator[LedgerEntry]:
        for row in self.model.scan(self.model.generation == generation):
            yield _to_entry(row)

    def delete_generation(self, generation: str) -> int:
        removed = 0
        with self.model.batch_write() as batch:
            for row in self.model.scan(self.model.generation == generation):
                batch.delete(row)
                removed += 1
        return removed


def _to_entry(row: LedgerModel) -> LedgerEntry:
    return LedgerEntry(
        doc_id=row.doc_id,
        generation=row.generation,
        source_version=int(row.source_version if row.source_version is not None else -1),
        chunk_keys=[str(k) for k in (row.chunk_keys or [])],
        pending_keys=sorted(row.pending_keys or []),
        attrs_hash=row.attrs_hash or "",
        state=row.state or "committed",
        source_updated_at=row.source_updated_at,
        indexed_at=row.indexed_at,
    )
