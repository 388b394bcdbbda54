"""Explain one document: for each generation that still has an index, what it holds of the doc
against what the source says now, and one verdict on why a result from it may look wrong.

"If a result looks wrong, the team can see whether it came from old content, old chunking, an
old model, stale metadata, or the current production generation." Per generation this reads the
doc's chunks from the index (every chunk, by a k-NN query filtered to the doc id, so chunks the
ledger forgot are found too), re-chunks the current source item with the generation's chunker,
and compares: source version, chunk texts, chunker version, model id, ACL, tenant and metadata;
the ledger entry is shown beside them. Verdicts, the first that applies:

- ``orphaned``: chunks of a doc the source no longer has (deleted, archived, no content), or
  chunks beyond what the current source makes (leftovers of an older cut);
- ``missing``: the source has content, the generation holds no chunk of it;
- ``old model``: a chunk embedded by another model than the generation's (invariant I1 broken);
- ``old chunker``: a chunk cut by another chunker version, or at the current version but cut
  differently from what the generation's chunker makes of the text now;
- ``stale content``: chunks of an older source version whose text differs from the current one;
- ``stale metadata or access``: current text, but ACL, tenant or metadata differ from the source;
- ``current``: the generation holds exactly what the source says (absent, for a gone doc).

Pure over the ports; the CLI (``dynembed explain``, ``dynembed search --explain``) and the audit
function (``{"explain": "DOC_ID"}``) call it alike. Recent decisions come from a
``recent`` callable when the runtime keeps them (the local stack does); else "not recorded".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dynembed.core.errors import DynembedError
from dynembed.core.models import Generation, GenerationStatus
from dynembed.core.ports import ChunkIndex, Ledger, Registry, SourceReader
from dynembed.core.schema import SourceSchema
from dynembed.sync.chunking import chunker_for
from dynembed.sync.reconcile import attributes_of

VERDICTS = (
    "current",
    "stale content",
    "stale metadata or access",
    "old chunker",
    "old model",
    "missing",
    "orphaned",
)
MAX_CHUNKS = 1000
"""The most chunks of one doc read from an index (the k-NN query's k)."""
CHUNK_FIELDS = (
    "doc_id",
    "chunk_key",
    "chunk_index",
    "content_hash",
    "source_version",
    "indexed_at",
    "model_id",
    "chunker_version",
    "generation",
    "tenant",
    "acl",
    "metadata",
)

RecentDecisions = Callable[[str], list[dict[str, Any]] | None]
"""doc id -> its recent decisions and index writes, newest last (None: not recorded here)."""


@dataclass
class ChunkView:
    chunk_key: str
    chunk_index: int
    source_version: int
    model_id: str
    chunker_version: str
    content_hash: str
    indexed_at: float | None
    problems: list[str] = field(default_factory=list)
    """What differs from the source or the generation (empty: this chunk is current)."""


@dataclass
class GenerationView:
    generation: str
    status: str
    write_target: bool
    serving: bool
    """The alias points at it: what production search answers from."""
    model_id: str
    chunker_version: str
    verdict: str
    reasons: list[str]
    indexed_versions: list[int] = field(default_factory=list)
    chunks: list[ChunkView] = field(default_factory=list)
    expected_chunks: int = 0
    """Chunks the generation's chunker makes of the current source item."""
    ledger: dict[str, Any] | None = None
    versus_production: list[str] = field(default_factory=list)
    """How this generation's model and chunker differ from the serving one's."""


@dataclass
class Explanation:
    doc_id: str
    at: float
    source: dict[str, Any]
    """exists, live, version, updated_at, acl, tenant, metadata, content_chars."""
    generations: list[GenerationView]
    recent: list[dict[str, Any]] | None
    """Recent decisions and index writes with their lag; None: not recorded by this runtime."""

    def verdicts(self) -> dict[str, str]:
        return {g.generation: g.verdict for g in self.generations}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recent"] = self.recent if self.recent is not None else "not recorded"
        return data


def explain_document(
    doc_id: str,
    *,
    schema: SourceSchema,
    source: SourceReader,
    ledger: Ledger,
    registry: Registry,
    index: ChunkIndex,
    alias: str,
    recent: RecentDecisions | None = None,
    clock: Callable[[], float] = time.time,
) -> Explanation:
    if not doc_id.strip():
        raise ValueError("explain: the doc id is empty")
    item = source.get_item(doc_id)
    live = item is not None and not (schema.tombstone and schema.tombstone.is_tombstoned(item))
    attrs = attributes_of(item, schema) if item is not None and live else None
    serving_index = index.alias_target(alias)
    generations = [g for g in registry.list() if g.status is not GenerationStatus.RETIRED]
    serving = next((g for g in generations if g.index_name == serving_index), None)
    views = [
        _view(doc_id, gen, schema, item if live else None, attrs, ledger, index, serving)
        for gen in generations
    ]
    return Explanation(
        doc_id=doc_id,
        at=clock(),
        source=_source_facts(doc_id, schema, item, live),
        generations=views,
        recent=recent(doc_id) if recent is not None else None,
    )


def _source_facts(
    doc_id: str, schema: SourceSchema, item: dict[str, Any] | None, live: bool
) -> dict[str, Any]:
    if item is None:
        return {"exists": False, "live": False}
    return {
        "exists": True,
        "live": live,
        "version": schema.version_of(item, doc_id),
        "updated_at": schema.updated_at_of(item),
        **attributes_of(item, schema),
        "content_chars": sum(len(text) for _, text in schema.content_of(item)),
    }


def _view(
    doc_id: str,
    gen: Generation,
    schema: SourceSchema,
    item: dict[str, Any] | None,
    attrs: dict[str, Any] | None,
    ledger: Ledger,
    index: ChunkIndex,
    serving: Generation | None,
) -> GenerationView:
    entry = ledger.get(doc_id, gen.id)
    view = GenerationView(
        generation=gen.id,
        status=gen.status.value,
        write_target=gen.write_target,
        serving=serving is not None and serving.id == gen.id,
        model_id=gen.model.model_id,
        chunker_version=gen.chunker.version,
        verdict="current",
        reasons=[],
        ledger=asdict(entry) if entry is not None else None,
        versus_production=_versus(gen, serving),
    )
    try:
        stored = _doc_chunks(index, gen, doc_id)
    except DynembedError as exc:
        view.verdict, view.reasons = "missing", [f"the index {gen.index_name} cannot be read: {exc}"]
        return view
    expected = chunker_for(gen.chunker).chunk(schema.content_of(item)) if item is not None else []
    version = schema.version_of(item, doc_id) if item is not None else None
    view.expected_chunks = len(expected)
    view.chunks = [_chunk_view(src, gen, version, attrs) for src in stored]
    view.indexed_versions = sorted({c.source_version for c in view.chunks})
    ledger_version = entry.source_version if entry is not None and entry.state == "committed" else None
    view.verdict, view.reasons = _verdict(view, {c.content_hash for c in expected}, version, ledger_version)
    if (
        entry is not None
        and version is not None
        and entry.source_version < version
        and view.verdict == "current"
    ):
        view.reasons.append(f"the ledger says version {entry.source_version}; the index is already current")
    if entry is not None and entry.pending_keys:
        view.reasons.append(
            f"{len(entry.pending_keys)} pending chunk keys in the ledger (a write in flight or interrupted)"
        )
    return view


def _doc_chunks(index: ChunkIndex, gen: Generation, doc_id: str) -> list[dict[str, Any]]:
    """Every chunk of the doc: a k-NN query filtered to its id (the probe vector only orders
    them; every chunk of the doc matches the filter, so all are returned up to MAX_CHUNKS)."""
    probe = [1.0] + [0.0] * (gen.model.dimension - 1)
    hits = index.knn_search(
        gen.index_name, probe, MAX_CHUNKS, {"bool": {"filter": [{"term": {"doc_id": doc_id}}]}}
    )
    chunks = [dict(hit.source) for hit in hits if hit.source.get("doc_id") == doc_id]
    return sorted(chunks, key=lambda c: (int(c.get("chunk_index") or 0), str(c.get("chunk_key"))))


def _chunk_view(
    src: dict[str, Any], gen: Generation, version: int | None, attrs: dict[str, Any] | None
) -> ChunkView:
    chunk = ChunkView(
        chunk_key=str(src.get("chunk_key")),
        chunk_index=int(src.get("chunk_index") or 0),
        source_version=int(src.get("source_version") or 0),
        model_id=str(src.get("model_id")),
        chunker_version=str(src.get("chunker_version")),
        content_hash=str(src.get("content_hash")),
        indexed_at=src.get("indexed_at"),
    )
    if chunk.model_id != gen.model.model_id:
        chunk.problems.append(f"model {chunk.model_id}, the generation's is {gen.model.model_id}")
    if chunk.chunker_version != gen.chunker.version:
        chunk.problems.append(f"chunker {chunk.chunker_version}, the generation's is {gen.chunker.version}")
    if attrs is not None:
        chunk.problems += _attribute_differences(src, attrs)
    return chunk


def _attribute_differences(src: dict[str, Any], attrs: dict[str, Any]) -> list[str]:
    differences = []
    if sorted(src.get("acl") or []) != sorted(attrs.get("acl") or []):
        differences.append(
            f"acl {sorted(src.get('acl') or [])}, the source's is {sorted(attrs.get('acl') or [])}"
        )
    if (src.get("tenant") or None) != (attrs.get("tenant") or None):
        differences.append(f"tenant {src.get('tenant')!r}, the source's is {attrs.get('tenant')!r}")
    if (src.get("metadata") or {}) != (attrs.get("metadata") or {}):
        differences.append(
            f"metadata {src.get('metadata') or {}}, the source's is {attrs.get('metadata') or {}}"
        )
    return differences


def _verdict(
    view: GenerationView, expected: set[str], version: int | None, ledger_version: int | None
) -> tuple[str, list[str]]:
    """Chunk texts are compared by content hash with what the generation's chunker makes of the
    current source; chunk versions alone prove nothing (unchanged chunks keep the version they
    were written at). Whether the generation ever reconciled the current version comes from
    the ledger."""
    held = {c.content_hash for c in view.chunks}
    if version is None or not expected:
        if view.chunks:
            why = "the source no longer has the doc" if version is None else "the source item has no content"
            return "orphaned", [f"{len(view.chunks)} chunks indexed, but {why}"]
        return "current", ["absent, as in the source" if version is None else "no content to index"]
    if not view.chunks:
        return "missing", [
            f"the source has {len(expected)} chunks of content at version {version}; none indexed"
        ]
    models = sorted({c.model_id for c in view.chunks if c.model_id != view.model_id})
    if models:
        return "old model", [
            f"chunks embedded by {', '.join(models)}; the generation's model is {view.model_id}"
        ]
    chunkers = sorted({c.chunker_version for c in view.chunks if c.chunker_version != view.chunker_version})
    if chunkers:
        return "old chunker", [
            f"chunks cut by {', '.join(chunkers)}; the generation's chunker is {view.chunker_version}"
        ]
    if held != expected:
        absent = len(expected - held)
        if not absent:
            return "orphaned", [f"{len(held - expected)} leftover chunks the current text does not make"]
        if ledger_version is None or ledger_version < version:
            at = "never" if ledger_version is None else f"up to version {ledger_version}"
            return "stale content", [
                f"the source is at version {version}; this generation reconciled the doc {at}: "
                f"{absent} of {len(expected)} chunks of the current text are not indexed"
            ]
        return "old chunker", [
            f"reconciled at version {version}, but {absent} of the {len(expected)} chunks "
            f"{view.chunker_version} makes of the current text are not indexed (cut differently)"
        ]
    attribute_problems = sorted(
        {p for c in view.chunks for p in c.problems if p.startswith(("acl", "tenant", "metadata"))}
    )
    if attribute_problems:
        return "stale metadata or access", attribute_problems
    return "current", [f"{len(view.chunks)} chunks match the source at version {version}"]


def _versus(gen: Generation, serving: Generation | None) -> list[str]:
    if serving is None:
        return ["no generation serves the alias"]
    if serving.id == gen.id:
        return ["serves production search"]
    notes = []
    if gen.model.model_id != serving.model.model_id:
        notes.append(f"model {gen.model.model_id}; production's is {serving.model.model_id}")
    if gen.chunker.version != serving.chunker.version:
        notes.append(f"chunker {gen.chunker.version}; production's is {serving.chunker.version}")
    return notes or ["same model and chunker as production"]
