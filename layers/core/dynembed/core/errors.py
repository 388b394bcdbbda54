"""One error vocabulary for dynembed.

Adapters raise these ``from`` the underlying cause; handlers turn them into batch-item failures
or workflow failures in exactly one place.
"""

from __future__ import annotations


class DynembedError(Exception):
    """Base class for every error dynembed raises on purpose."""


class ConfigError(DynembedError):
    """Configuration is missing or invalid; the message names the field."""


class MalformedRecordError(DynembedError):
    """A stream record or job cannot be interpreted; the message names the doc (when known)."""

    def __init__(self, message: str, doc_id: str | None = None) -> None:
        self.doc_id = doc_id
        self.detail = message
        """The message without the doc prefix (to combine several problems of one item)."""
        prefix = f"doc {doc_id!r}: " if doc_id else ""
        super().__init__(prefix + message)


class ModelMismatchError(DynembedError):
    """A query would be compared with vectors from a different embedding model (invariant I1)."""


class UnknownModelError(DynembedError):
    """An embedding model id that no provider knows."""


class UnknownGenerationError(DynembedError):
    """A generation id that the registry does not hold."""


class UnknownDocumentError(DynembedError):
    """A doc id that the source table does not hold."""


class GenerationNotSearchableError(DynembedError):
    """A generation that receives no changes (failed, rejected, retired, or not yet a write
    target): its index could return docs revoked or deleted since, so it is not searched."""

    def __init__(self, message: str, generation_id: str, status: str) -> None:
        self.generation_id = generation_id
        self.status = status
        super().__init__(message)


class TransientError(DynembedError):
    """Worth retrying: throttling, timeouts, 429s, unavailable dependencies."""


class IndexWriteError(DynembedError):
    """An index write failed for a reason retrying the same request will not fix."""


class VersionConflictError(DynembedError):
    """A conditional write lost to a newer version; expected under reordering."""


class EmbeddingError(DynembedError):
    """The embedding provider failed for a non-transient reason."""


class EmbeddingIncomplete(TransientError):
    """Some texts of a batch were embedded while others stayed throttled. ``vectors`` (by the
    text's position in the batch) are kept by the caller (the embedding cache), so the retry
    pays only for what is missing."""

    def __init__(self, message: str, vectors: dict[int, list[float]]) -> None:
        super().__init__(message)
        self.vectors = vectors


class AccessDeniedError(DynembedError):
    """The caller's verified identity does not allow the request: no principal could be
    established, or tenant isolation requires a tenant it does not carry. Never retried."""
