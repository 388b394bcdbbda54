"""Reading an edit stream (data/editstream/README.md): a snapshot, then one batch per commit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynembed.core.errors import ConfigError
from dynembed_ops.source_app import read_jsonl

_REQUIRED = ("seq", "phase", "commit_index", "doc_id", "op")


@dataclass(frozen=True)
class EditEvent:
    seq: int
    phase: str
    commit_index: int
    doc_id: str
    op: str
    body: str
    title: str
    ts: str
    diff_chars: int
    prev_chars: int


def read_events(path: str | Path) -> list[EditEvent]:
    events = []
    for number, raw in read_jsonl(path):
        missing = [f for f in _REQUIRED if f not in raw]
        if missing:
            raise ConfigError(f"{path}:{number}: missing {', '.join(missing)}")
        if raw["op"] not in ("upsert", "delete"):
            raise ConfigError(f"{path}:{number}: op must be upsert or delete, got {raw['op']!r}")
        events.append(_event(raw))
    events.sort(key=lambda e: e.seq)
    return events


def _event(raw: dict[str, Any]) -> EditEvent:
    return EditEvent(
        seq=int(raw["seq"]),
        phase=str(raw["phase"]),
        commit_index=int(raw["commit_index"]),
        doc_id=str(raw["doc_id"]),
        op=str(raw["op"]),
        body=str(raw.get("body") or ""),
        title=str(raw.get("title") or raw["doc_id"]),
        ts=str(raw.get("ts") or ""),
        diff_chars=int(raw.get("diff_chars") or 0),
        prev_chars=int(raw.get("prev_chars") or 0),
    )


def batches(events: list[EditEvent], max_commits: int | None = None) -> Iterator[tuple[int, list[EditEvent]]]:
    """(commit_index, events): the snapshot first (index 0), then each commit in order."""
    groups: dict[int, list[EditEvent]] = {}
    for event in events:
        groups.setdefault(event.commit_index, []).append(event)
    for commit_index in sorted(groups):
        if max_commits is not None and commit_index > max_commits:
            return
        yield commit_index, groups[commit_index]
