"""An Embedder wrapper that counts what it embeds: the evidence behind "embed only what
changed" (invariant I4) in tests and benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from dynembed.core.ports import Embedder


class CountingEmbedder:
    """Delegates to ``inner`` and counts texts, characters and calls, documents and queries
    apart (and document tokens, given a ``token_counter``). With ``record_texts=True`` it also
    keeps every document text, in order."""

    def __init__(
        self,
        inner: Embedder,
        *,
        record_texts: bool = False,
        token_counter: Callable[[str], int] | None = None,
    ) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.record_texts = record_texts
        self.token_counter = token_counter
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.document_calls = 0
            self.document_texts = 0
            self.document_chars = 0
            self.document_tokens = 0
            self.query_calls = 0
            self.query_texts = 0
            self.query_chars = 0
            self.embedded_texts: list[str] = []

    @property
    def texts(self) -> int:
        """Every text embedded, documents and queries."""
        return self.document_texts + self.query_texts

    @property
    def chars(self) -> int:
        return self.document_chars + self.query_chars

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self.inner.embed_documents(texts)
        tokens = sum(self.token_counter(text) for text in texts) if self.token_counter else 0
        with self._lock:
            self.document_tokens += tokens
            self.document_calls += 1
            self.document_texts += len(texts)
            self.document_chars += sum(len(text) for text in texts)
            if self.record_texts:
                self.embedded_texts.extend(texts)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        vector = self.inner.embed_query(text)
        with self._lock:
            self.query_calls += 1
            self.query_texts += 1
            self.query_chars += len(text)
        return vector

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self.inner.embed_queries(texts)
        with self._lock:
            self.query_calls += 1
            self.query_texts += len(texts)
            self.query_chars += sum(len(text) for text in texts)
        return vectors
