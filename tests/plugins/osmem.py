"""Fixtures for osmem-server: one server per test session, a fresh index name per test.

Indices are cheap on osmem, so tests share the server and isolate by name instead of by
process; every name handed out is deleted at teardown. (The osmem_server package's own
``osmem_server``/``osmem_clone`` fixtures freeze a seeded base; dynembed needs no seed.)
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError

from dynembed.core.models import ChunkDocument, ChunkerSpec, DistanceSpace, Generation, ModelSpec
from dynembed.index.opensearch import build_client
from dynembed_ops.local.osmem import RunningOsmem, start_osmem


@pytest.fixture(scope="session")
def osmem() -> Iterator[RunningOsmem]:
    """A running osmem-server on a free port; ``osmem.url`` is its endpoint."""
    server = start_osmem()
    yield server
    server.stop()


@pytest.fixture
def opensearch_client(osmem: RunningOsmem) -> OpenSearch:
    return build_client(osmem.url)


@pytest.fixture
def unique_name(opensearch_client: OpenSearch) -> Iterator[Callable[[str], str]]:
    """``unique_name("chunks")`` → ``chunks-<random>``; indices by those names are deleted after."""
    handed_out: list[str] = []

    def make(prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        handed_out.append(name)
        return name

    yield make
    for name in handed_out:
        with contextlib.suppress(NotFoundError):
            opensearch_client.indices.delete(index=name)


@pytest.fixture
def index_name(unique_name: Callable[[str], str]) -> str:
    """A fresh index name, deleted (if created) after the test."""
    return unique_name("chunks")


def generation_for(index_name: str, dimension: int = 4, space: str = "cosinesimil") -> Generation:
    """A generation whose index is ``index_name`` (model: a deterministic test model)."""
    return Generation(
        id=f"gen-{index_name}",
        index_name=index_name,
        model=ModelSpec(provider="test", name="vectors", dimension=dimension, space=DistanceSpace(space)),
        chunker=ChunkerSpec(),
    )


def chunk_doc(
    doc_id: str,
    embedding: Sequence[float],
    *,
    version: int = 1,
    acl: Sequence[str] = ("public",),
    tenant: str | None = "acme",
    chunk_key: str = "k0",
    text: str | None = None,
    metadata: dict[str, Any] | None = None,
    generation: Generation | None = None,
) -> ChunkDocument:
    """A chunk document with every provenance field filled, as reconcile would write it."""
    return ChunkDocument(
        doc_id=doc_id,
        chunk_key=chunk_key,
        chunk_index=0,
        text=text if text is not None else f"text of {doc_id} v{version}",
        content_hash=f"h-{doc_id}-{version}",
        embedding=[float(x) for x in embedding],
        source_version=version,
        source_updated_at=1_700_000_000.0 + version,
        indexed_at=time.time(),
        model_id=generation.model.model_id if generation else "test/vectors@1:4",
        chunker_version=generation.chunker.version if generation else "structural-test",
        schema_version=1,
        generation=generation.id if generation else "gen-test",
        tenant=tenant,
        acl=list(acl),
        metadata=metadata or {},
    )
