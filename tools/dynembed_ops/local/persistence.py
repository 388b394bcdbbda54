"""A local stack's state across restarts: ``dynembed up --data-dir DIR``.

Without a data dir the stack lives in memory (moto, osmem) and is gone when ``up`` stops. With
one, what cannot be recomputed is kept on disk as it changes, and everything else is rebuilt:

Kept (written as it changes)
  ``source.jsonl``   journal of the source table: one line per stream record (the new image in
                     DynamoDB JSON, or the key of a delete), appended and fsynced per batch by a
                     consumer of the table's stream of its own, so writes from any client (the
                     CLI, the AWS CLI, an app) are kept. Compacted to one line per item at start.
  ``registry.json``  the generation registry rows (ids, models, chunkers, statuses, evaluation
                     reports), rewritten atomically whenever a scan (about once a second, and at
                     stop) finds them changed.
  ``meta.json``      format version and the source schema the data was written with.

Rebuilt at start
  every restored item is written back to the source table and flows through the stream →
  classify → sync, into the indexes of the write targets (created again, the alias on the active
  generation): the indexes, the ledger and the embedding cache are recomputed. A failed
  generation keeps its registry row and report; its index comes back empty.

Not kept
  queued jobs, dead letters and parked stream records (a malformed item is parked again when
  classify meets it), held jobs (re-held by classify), telemetry, Step Functions executions (a
  rebuild that was running is marked failed: start it again).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dynembed.core.errors import ConfigError
from dynembed.core.schema import SourceSchema
from dynembed_ops.local.pumps import StreamPump

FORMAT = 1
Typed = dict[str, Any]
"""An item in DynamoDB JSON (``{"attr": {"S": "..."}}``), as a Lambda stream event carries it."""


@dataclass
class SourceReplay:
    """The source table as the journal left it."""

    items: dict[str, Typed] = field(default_factory=dict)
    """Canonical key → the item's last image."""
    lines: int = 0
    torn_tail: bool = False
    """The last line was cut short (the process was killed mid-write); it was left out."""


def key_of(keys: Mapping[str, Any]) -> str:
    return json.dumps(keys, sort_keys=True)


class DataDir:
    """The files of one data dir. Only one ``dynembed up`` may hold it (``lock``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.source_journal = self.path / "source.jsonl"
        self.registry_file = self.path / "registry.json"
        self.meta_file = self.path / "meta.json"
        self._lock: IO[str] | None = None

    # ---- ownership ------------------------------------------------------------------------------
    def lock(self) -> DataDir:
        """Held until the process ends (the kernel releases it even on SIGKILL)."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = (self.path / "lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise ConfigError(
                f"data dir {self.path} is in use by another `dynembed up` (pid {holder}): stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle
        return self

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ---- schema ---------------------------------------------------------------------------------
    def schema_for(self, requested: SourceSchema | None) -> SourceSchema:
        """The schema the data was written with; a different ``requested`` one is refused (items
        would be read by other attributes than they were written with)."""
        if self.meta_file.exists():
            meta = _read_json(self.meta_file)
            if meta.get("format") != FORMAT:
                raise ConfigError(
                    f"{self.meta_file}: unknown format {meta.get('format')!r} (expected {FORMAT})"
                )
            stored = SourceSchema.from_mapping(
                meta.get("schema") or {}, origin=f"source schema in {self.meta_file}"
            )
            if requested is not None and requested != stored:
                raise ConfigError(
                    f"data dir {self.path} was written with another source schema: start without "
                    "--schema (the stored one is used) or with the same one, or use a fresh --data-dir"
                )
            return stored
        schema = requested or SourceSchema()
        _write_atomically(
            self.meta_file, json.dumps({"format": FORMAT, "schema": schema.model_dump(mode="json")})
        )
        return schema

    # ---- source journal -------------------------------------------------------------------------
    def read_source(self) -> SourceReplay:
        replay = SourceReplay()
        if not self.source_journal.exists():
            return replay
        with self.source_journal.open(encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        unterminated = lines[-1] != ""  # every line is written with its newline in one write
        last = len(lines) if unterminated else len(lines) - 1
        for number, line in enumerate(lines[:last], start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                replay.lines += 1
                if entry["op"] == "put":
                    replay.items[key_of(entry["keys"])] = entry["item"]
                elif entry["op"] == "delete":
                    replay.items.pop(key_of(entry["keys"]), None)
                else:
                    raise ValueError(f"unknown op {entry['op']!r}")
            except (ValueError, KeyError, TypeError) as exc:
                if number == last and unterminated:
                    replay.torn_tail = True  # cut short by a kill: every complete line before it counts
                    break
                raise ConfigError(f"{self.source_journal}:{number}: unreadable journal line ({exc})") from exc
        return replay

    def compact(self, replay: SourceReplay) -> None:
        """One put per live item (drops superseded lines and a torn tail), replaced atomically."""
        body = "".join(
            json.dumps({"op": "put", "keys": json.loads(key), "item": item}) + "\n"
            for key, item in replay.items.items()
        )
        _write_atomically(self.source_journal, body)

    # ---- registry -------------------------------------------------------------------------------
    def read_registry(self) -> list[Typed]:
        if not self.registry_file.exists():
            return []
        rows = _read_json(self.registry_file).get("rows")
        if not isinstance(rows, list):
            raise ConfigError(f"{self.registry_file}: expected {{'rows': [...]}}")
        return rows

    def write_registry(self, rows: list[Typed]) -> bool:
        """Rewrite when the rows changed; returns whether it wrote."""
        body = json.dumps({"format": FORMAT, "rows": rows}, sort_keys=True, indent=1)
        with contextlib.suppress(OSError):
            if self.registry_file.read_text(encoding="utf-8") == body:
                return False
        _write_atomically(self.registry_file, body)
        return True


class SourceJournal:
    """The function a ``StreamPump`` invokes: appends each stream record of the source table to
    the journal and fsyncs once per batch, before the batch counts as done.

    ``echoes`` are the items a restore wrote back: their INSERT records are what the journal
    already holds, so the first record of each that matches is skipped (no duplicate lines)."""

    def __init__(self, path: Path, echoes: Mapping[str, Typed] | None = None) -> None:
        self.path = path
        self.echoes = {k: _canonical(v) for k, v in (echoes or {}).items()}
        self.written = 0

    def __call__(self, event: Mapping[str, Any]) -> dict[str, Any]:
        lines = []
        for record in event.get("Records", []):
            change = record["dynamodb"]
            key = key_of(change["Keys"])
            if record["eventName"] == "REMOVE":
                self.echoes.pop(key, None)
                lines.append({"op": "delete", "keys": change["Keys"]})
                continue
            image = change["NewImage"]
            if self.echoes.pop(key, None) == _canonical(image):
                continue
            lines.append({"op": "put", "keys": change["Keys"], "item": image})
        if lines:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write("".join(json.dumps(line) + "\n" for line in lines))
                handle.flush()
                os.fsync(handle.fileno())
            self.written += len(lines)
        return {"batchItemFailures": []}


def journal_pump(streams: Any, stream_arn: str, journal: SourceJournal, region: str) -> StreamPump:
    """A second consumer of the source stream, feeding the journal. A batch that cannot be
    written (disk full, folder gone) is retried every round until it can: never dropped."""
    return StreamPump(
        streams=streams,
        sqs=None,
        stream_arn=stream_arn,
        invoke=journal,
        max_retries=sys.maxsize,
        bisect_on_error=False,
        region=region,
    )


def registry_rows(ddb: Any, table: str) -> list[Typed]:
    """Every registry row in DynamoDB JSON, in id order (a stable file when nothing changed)."""
    rows: list[Typed] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        rows += page.get("Items", [])
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True))


def put_items(ddb: Any, table: str, items: Iterator[Typed] | list[Typed]) -> int:
    """BatchWriteItem in 25s, retrying what DynamoDB leaves unprocessed."""
    written = 0
    batch: list[Typed] = []

    def flush() -> None:
        pending: dict[str, Any] = {table: [{"PutRequest": {"Item": _client_item(i)}} for i in batch]}
        for attempt in range(20):
            unprocessed = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not unprocessed:
                return
            pending = unprocessed
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise ConfigError(f"restoring {table}: DynamoDB kept refusing {len(pending[table])} items")

    for item in items:
        batch.append(item)
        if len(batch) == 25:
            flush()
            written += len(batch)
            batch = []
    if batch:
        flush()
        written += len(batch)
    return written


def _client_item(item: Typed) -> Typed:
    """Lambda's stream JSON carries binary as base64; the boto3 client wants bytes."""
    return {name: _client_value(value) for name, value in item.items()}


def _client_value(value: Mapping[str, Any]) -> Any:
    if "B" in value:
        return {"B": base64.b64decode(value["B"])}
    if "BS" in value:
        return {"BS": [base64.b64decode(v) for v in value["BS"]]}
    if "M" in value:
        return {"M": _client_item(value["M"])}
    if "L" in value:
        return {"L": [_client_value(v) for v in value["L"]]}
    return dict(value)


def _canonical(value: Any) -> Any:
    """Sets compare as sets; everything else as is."""
    if isinstance(value, dict):
        return {k: sorted(v) if k in ("SS", "NS", "BS") else _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def _write_atomically(path: Path, body: str) -> None:
    """Write a sibling, fsync, rename over: a kill leaves the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
