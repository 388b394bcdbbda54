"""Translation of opensearch-py exceptions into dynembed's error vocabulary, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import OpenSearchException, TransportError

from dynembed.core.errors import DynembedError, IndexWriteError, TransientError
from dynembed.core.ports import WriteReport

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


def translate_error(exc: OpenSearchException, what: str, *, write: bool = False) -> DynembedError:
    """``what`` names the operation and the index, so the message alone says where it failed.

    Connection failures and 429/502/503/504 are transient (the caller's retry or the queue's
    redelivery will do); anything else is permanent: IndexWriteError for writes.
    """
    if isinstance(exc, OpenSearchConnectionError):
        return TransientError(f"{what}: OpenSearch unreachable: {exc}")
    status = exc.status_code if isinstance(exc, TransportError) else None
    if status in RETRYABLE_STATUS:
        return TransientError(f"{what}: OpenSearch answered {status}: {exc}")
    if write:
        return IndexWriteError(f"{what}: {exc}")
    return DynembedError(f"{what}: {exc}")


@dataclass(frozen=True)
class ItemFailure:
    """One bulk item OpenSearch refused."""

    chunk_id: str
    status: int
    error_type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.chunk_id}: {self.status} {self.error_type}: {self.reason}"


class BulkWriteError(IndexWriteError):
    """Bulk items failed for reasons a retry will not fix. Carries every failure (by chunk id)
    and the report of what did succeed, since the rest of the batch was applied."""

    def __init__(self, index: str, operation: str, failures: list[ItemFailure], report: WriteReport) -> None:
        self.index = index
        self.failures = failures
        self.report = report
        shown = "; ".join(str(f) for f in failures[:10])
        more = f" (+{len(failures) - 10} more)" if len(failures) > 10 else ""
        super().__init__(f"{operation} on index {index}: {len(failures)} chunk(s) failed: {shown}{more}")

    @property
    def chunk_ids(self) -> list[str]:
        return [f.chunk_id for f in self.failures]


class BulkThrottledError(TransientError):
    """Bulk items were still throttled (429) after every retry; the batch may be retried whole,
    since external versions make replays harmless."""

    def __init__(self, index: str, operation: str, chunk_ids: list[str], report: WriteReport) -> None:
        self.index = index
        self.chunk_ids = chunk_ids
        self.report = report
        shown = ", ".join(chunk_ids[:10]) + (f" (+{len(chunk_ids) - 10} more)" if len(chunk_ids) > 10 else "")
        super().__init__(f"{operation} on index {index}: still throttled after retries: {shown}")
