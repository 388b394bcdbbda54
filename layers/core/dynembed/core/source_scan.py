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
    """doc id → LiveDoc for every well-formed item that is not a tombstone. Malformed items
    (``SourceSchema.problems``) are listed with their reason instead of stopping the scan, and
    their ids kept: none of their chunks may be served."""

    docs: dict[str, LiveDoc] = field(default_factory=dict)
    malformed: list[str] = field(default_factory=list)
    """One reason per malformed item, naming the doc (when it has a usable id) and every bad
    attribute."""
    malformed_ids: set[str] = field(default_factory=set)
    complete: bool = True


def live_documents(
    schema: SourceSchema,
    source: SourceReader,
    *,
    include: Callable[[str], bool] = lambda _doc_id: True,
    stop: Callable[[], bool] = lambda: False,
) -> LiveDocuments:
    """Scan the source; ``include`` samples docs by id (an item without a usable id is always
    included: it cannot be sampled), ``stop`` ends the scan early (time budget)."""
    live = LiveDocuments()
    for item in iter_source(source):
        doc_id = schema.label_of(item)
        if doc_id is None or include(doc_id):
            problems = schema.problems(item)
            if problems:
                live.malformed.append(str(MalformedRecordError("; ".join(problems), doc_id)))
                if doc_id is not None:
                    live.malformed_ids.add(doc_id)
            elif not (schema.tombstone and schema.tombstone.is_tombstoned(item)):
                assert doc_id is not None
                live.docs[doc_id] = LiveDoc(
                    schema.version_of(item, doc_id), schema.updated_at_of(item), bool(schema.content_of(item))
                )
        if stop():
            live.complete = False
            break
    return live
