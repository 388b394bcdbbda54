"""What an edit stream costs without dynembed's incremental sync, measured on the same events.

Both baselines run in-process (no moto, no OpenSearch): they only have to say how many
characters they send to the embedder and what their store holds at the end. They embed with
the same ``hash-256`` embedder, wrapped in the same counter as the pipeline.

- ``naive``: every changed doc is chunked with dynembed's chunker and every chunk re-embedded.
- ``langchain``: LangChain's indexing API (``langchain_core.indexing.index``) with an in-memory
  record manager and vector store, ``RecursiveCharacterTextSplitter(1000, 200)``,
  ``cleanup="incremental"``, ``source_id_key="source"``: it skips chunks whose hash (text +
  metadata) it has already indexed and removes the rest of a re-indexed source.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dynembed.core.errors import ConfigError
from dynembed.core.models import Chunk, ChunkerSpec
from dynembed.embedders.counting import CountingEmbedder
from dynembed.embedders.hashing import HashingEmbedder
from dynembed.sync.chunking import chunker_for
from dynembed_ops.bench.checks import ExpectedChunk, StoredChunk
from dynembed_ops.editstream import EditEvent

LANGCHAIN_CHUNK_SIZE = 1000
LANGCHAIN_CHUNK_OVERLAP = 200

ContentParts = Callable[[str, str], list[tuple[str, str]]]
"""(title, body) → the item's content parts, as the source schema reads them."""


@dataclass(frozen=True)
class FinalDoc:
    doc_id: str
    title: str
    body: str


class Baseline(Protocol):
    name: str
    counter: CountingEmbedder
    check_positions: bool
    """False where the store keeps no chunk position."""

    def apply(self, events: Sequence[EditEvent]) -> list[float]:
        """Apply one batch (snapshot or commit) in order; the seconds from the batch's start
        until each event's doc was stored (freshness without any network)."""
        ...

    def stored(self) -> list[StoredChunk]: ...

    def expected(self, docs: Mapping[str, FinalDoc]) -> list[ExpectedChunk]: ...


@dataclass
class NaiveBaseline:
    """Re-embed every chunk of a changed doc (what a pipeline without a ledger does)."""

    content_parts: ContentParts
    chunker: ChunkerSpec = field(default_factory=ChunkerSpec)
    name: str = "naive"
    check_positions: bool = True
    counter: CountingEmbedder = field(default_factory=lambda: CountingEmbedder(HashingEmbedder()))
    _store: dict[str, list[tuple[Chunk, list[float]]]] = field(default_factory=dict)

    def _chunks(self, title: str, body: str) -> list[Chunk]:
        return chunker_for(self.chunker).chunk(self.content_parts(title, body))

    def apply(self, events: Sequence[EditEvent]) -> list[float]:
        started = time.perf_counter()
        lags = []
        for event in events:
            if event.op == "delete":
                self._store.pop(event.doc_id, None)
            else:
                chunks = self._chunks(event.title, event.body)
                vectors = self.counter.embed_documents([c.text for c in chunks]) if chunks else []
                self._store[event.doc_id] = list(zip(chunks, vectors, strict=True))
            lags.append(time.perf_counter() - started)
        return lags

    def stored(self) -> list[StoredChunk]:
        return [
            StoredChunk(doc_id, chunk.text, chunk.index)
            for doc_id, chunks in self._store.items()
            for chunk, _ in chunks
        ]

    def expected(self, docs: Mapping[str, FinalDoc]) -> list[ExpectedChunk]:
        return [
            ExpectedChunk(doc.doc_id, chunk.index, chunk.text)
            for doc in docs.values()
            for chunk in self._chunks(doc.title, doc.body)
        ]


class LangChainBaseline:
    """LangChain's indexing API, set up the way its documentation recommends for a changing
    corpus: one ``index()`` call per batch, every changed doc's chunks in it.

    Each call's ``batch_size`` covers the whole batch: with smaller batches a source split
    across them is cleaned up and re-embedded within one call, which would overstate its cost.
    A deleted (or emptied) doc is removed through the record manager's keys for its source,
    since incremental cleanup only touches sources that appear in the call.
    """

    name = "langchain"
    check_positions = False

    def __init__(self) -> None:
        try:
            from langchain_core.indexing import InMemoryRecordManager
            from langchain_core.vectorstores import InMemoryVectorStore
            from langchain_text_splitters import RecursiveCharacterTextSplitter
        except ImportError as exc:
            raise ConfigError(
                f"the LangChain baseline needs the bench extra ({exc.name} is missing): "
                "pip install -e '.[bench]'"
            ) from exc
        self.counter = CountingEmbedder(HashingEmbedder())
        self.splitter = RecursiveCharacterTextSplitter(
            chunk_size=LANGCHAIN_CHUNK_SIZE, chunk_overlap=LANGCHAIN_CHUNK_OVERLAP
        )
        self.vector_store = InMemoryVectorStore(embedding=_langchain_embeddings(self.counter))
        self.record_manager = InMemoryRecordManager(namespace="dynembed-bench-editstream")
        self.record_manager.create_schema()

    def _documents(self, event: EditEvent) -> list[Any]:
        from langchain_core.documents import Document

        return [
            Document(page_content=text, metadata={"source": event.doc_id})
            for text in self.splitter.split_text(event.body)
        ]

    def apply(self, events: Sequence[EditEvent]) -> list[float]:
        from langchain_core.indexing import index

        started = time.perf_counter()
        latest: dict[str, EditEvent] = {}
        for event in events:  # a doc written twice in one commit: its last state counts
            latest.pop(event.doc_id, None)
            latest[event.doc_id] = event
        documents: list[Any] = []
        for doc_id, event in latest.items():
            docs = self._documents(event) if event.op == "upsert" else []
            if docs:
                documents.extend(docs)
            else:
                self._forget(doc_id)
        if documents:
            index(
                documents,
                self.record_manager,
                self.vector_store,
                cleanup="incremental",
                source_id_key="source",
                batch_size=max(100, len(documents)),
                key_encoder="sha256",
            )
        lag = time.perf_counter() - started
        return [lag] * len(events)

    def _forget(self, doc_id: str) -> None:
        keys = self.record_manager.list_keys(group_ids=[doc_id])
        if keys:
            self.vector_store.delete(keys)
            self.record_manager.delete_keys(keys)

    def stored(self) -> list[StoredChunk]:
        return [
            StoredChunk(str(record["metadata"]["source"]), str(record["text"]))
            for record in self.vector_store.store.values()
        ]

    def expected(self, docs: Mapping[str, FinalDoc]) -> list[ExpectedChunk]:
        """The splitter's chunks of each final doc, a repeated text once: LangChain keys a
        record by the hash of its text and metadata, so it stores one copy by design."""
        chunks = []
        for doc in docs.values():
            for position, text in enumerate(dict.fromkeys(self.splitter.split_text(doc.body))):
                chunks.append(ExpectedChunk(doc.doc_id, position, text))
        return chunks


def _langchain_embeddings(counter: CountingEmbedder) -> Any:
    """A LangChain ``Embeddings`` over the counting hash embedder."""
    from langchain_core.embeddings import Embeddings

    class CountingEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return counter.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return counter.embed_query(text)

    return CountingEmbeddings()
