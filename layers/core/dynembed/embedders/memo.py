"""Query vectors embedded once per model and text, for the length of one evaluation.

An evaluation asks the same model for the same golden queries several times: the golden-set
run, the restricted-principal probe, the calibration's golden vectors. ``QueryMemo`` embeds
them in one ``embed_queries`` call (``prime``) and hands each vector out again, so a query is
embedded once, and not one call at a time. Documents are never remembered: they pass through.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from dynembed.core.models import ModelSpec
from dynembed.core.ports import Embedder


class QueryMemo:
    """An Embedder over ``inner`` that remembers every query vector it made (by text)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.spec = inner.spec
        self._vectors: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def prime(self, texts: Sequence[str]) -> None:
        """Embed the texts not yet known, in one batched call."""
        self.embed_queries(texts)

    def known(self, text: str) -> bool:
        return text in self._vectors

    def remember(self, text: str, vector: list[float]) -> None:
        with self._lock:
            self._vectors[text] = list(vector)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            vectors = self.inner.embed_queries(missing)
            with self._lock:
                self._vectors.update(zip(missing, vectors, strict=True))
        with self._lock:
            return [list(self._vectors[t]) for t in texts]


class LiveQueries:
    """An Embedder that embeds every query alone, as a live search does, whatever ``memo``
    knows (a latency measurement must pay for it), and leaves each vector in ``memo``."""

    def __init__(self, memo: QueryMemo) -> None:
        self.memo = memo
        self.spec = memo.spec

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.memo.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        vector = self.memo.inner.embed_query(text)
        self.memo.remember(text, vector)
        return vector

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]


class QueryMemos:
    """One ``QueryMemo`` per model, over ``embedder_for`` (``Services.embedder_for``); its own
    ``embedder_for`` is what a search that should reuse the vectors is given."""

    def __init__(self, embedder_for: Callable[[ModelSpec], Embedder]) -> None:
        self._embedder_for = embedder_for
        self._memos: dict[str, QueryMemo] = {}
        self._lock = threading.Lock()

    def embedder_for(self, spec: ModelSpec) -> QueryMemo:
        with self._lock:
            if spec.model_id not in self._memos:
                self._memos[spec.model_id] = QueryMemo(self._embedder_for(spec))
            return self._memos[spec.model_id]

    def live_embedder_for(self, spec: ModelSpec) -> LiveQueries:
        return LiveQueries(self.embedder_for(spec))
