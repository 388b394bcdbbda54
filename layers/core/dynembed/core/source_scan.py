"""Reading the whole source table through the ``SourceReader`` port: every item, and the live
documents (not tombstoned) with what the audit and the rebuild need of each. One place, so the
audit and the rebuild agree on which items are live and on how a malformed item is handled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from dynembed.core.errors import MalformedRecordError
from dynembed.core.ports import SourceReader
from dynembed.core.schema import SourceSchema

SCAN_PAGE = 500


def iter_source(source: SourceReader, page_size: int = SCAN_PAGE) -> Iterator[dict[str, Any]]:
    """Every source item (one segment, paged)."""
    start: dict[str, Any] | None = None
    while True:
        items, start = source.scan_segment(0, 1, start, page_size)
        yield from items
        if not start:
            return


class LiveDoc(NamedTuple):
    version: int
    updated_at: float | None
    has_content: bool


@dataclass
class LiveDocuments:
    """doc id → LiveDoc for every well-formed item that is not a tombstone; malformed items are
    listed with their reason instead of stopping the scan."""

    docs: dict[str, LiveDoc] = field(default_factory=dict)
    malformed: list[str] = field(default_factory=list)
    complete: bool = True


def live_documents(
    schema: SourceSchema,
    source: SourceReader,
    *,
    include: Callable[[str], bool] = lambda _doc_id: True,
    stop: Callable[[], bool] = lambda: False,
) -> LiveDocuments:
    """Scan the source; ``include`` samples docs by id, ``stop`` ends the scan early (time budget)."""
    live = LiveDocuments()
    for item in iter_source(source):
        try:
            doc_id = schema.id_of(item)
            if not include(doc_id):
                continue
            if schema.tombstone and schema.tombstone.is_tombstoned(item):
                continue
            live.docs[doc_id] = LiveDoc(
                schema.version_of(item, doc_id), schema.updated_at_of(item), bool(schema.content_of(item))
            )
        except MalformedRecordError as exc:
            live.malformed.append(str(exc))
        if stop():
            live.complete = False
            break
    return live
