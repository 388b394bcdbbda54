"""Named sample events from ``events/`` (STYLE.md habit 8), shared by tests, local invokes and docs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dynembed.core.schema import SourceSchema, TombstoneRule

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"

SAMPLE_SCHEMA = SourceSchema(
    metadata_attributes=("category",),
    tombstone=TombstoneRule(attribute="status", values=("archived", "deleted")),
)
"""The source schema the ``dynamodb_stream_*`` sample events were written for: the default
attribute names (doc_id, version, updated_at, title, body, acl, tenant), ``category`` as
metadata and ``status`` archived/deleted as the tombstone. ``views`` is read by nothing."""


def load_event(name: str) -> dict[str, Any]:
    """The sample event ``events/<name>.json`` as Lambda would deliver it (a fresh copy)."""
    path = EVENTS_DIR / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in EVENTS_DIR.glob("*.json")))
        raise FileNotFoundError(f"no sample event {name!r} in {EVENTS_DIR} (known: {known})")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
