"""Generation lifecycle: create, bootstrap, promote (one atomic alias request), roll back, retire.

Statuses: building → evaluating → active; the previous active becomes standby and stays a write
target, so rollback needs no reprocessing (I6). A rejected candidate becomes failed, leaves the
write targets, and keeps its index for inspection.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

from dynembed.core.errors import DynembedError, UnknownGenerationError
from dynembed.core.models import (
    ChunkerSpec,
    Generation,
    GenerationStatus,
    ModelSpec,
    RetrievalSpec,
    VectorSpec,
)
from dynembed.core.ports import ChunkIndex, Registry

_VECTOR_RETRIEVAL = RetrievalSpec()
_FULL_PRECISION = VectorSpec()


def generation_id_for(
    model: ModelSpec,
    chunker: ChunkerSpec,
    now: float | None = None,
    *,
    retrieval: RetrievalSpec = _VECTOR_RETRIEVAL,
    vectors: VectorSpec = _FULL_PRECISION,
) -> str:
    """``g<UTC time>-<model>-<chunker version>`` plus, when retrieval or vectors differ from
    the defaults, their names and a digest of every setting: a different setting is a
    different id even when the readable part is the same."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() if now is None else now))
    readable = _slug(f"{model.name}-{chunker.version}")
    if retrieval == _VECTOR_RETRIEVAL and vectors == _FULL_PRECISION:
        return f"g{stamp}-{readable}"[:80]
    settings = retrieval.model_dump_json() + vectors.model_dump_json()
    digest = hashlib.sha256(settings.encode()).hexdigest()[:6]
    readable = _slug("-".join(p for p in (readable, retrieval.slug, vectors.slug) if p))
    head = f"g{stamp}-{readable}"[: 80 - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"  # the digest survives any cut of the readable part


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def new_generation(
    model: ModelSpec,
    chunker: ChunkerSpec,
    index_prefix: str,
    schema_version: int = 1,
    generation_id: str | None = None,
    now: float | None = None,
    *,
    retrieval: RetrievalSpec = _VECTOR_RETRIEVAL,
    vectors: VectorSpec = _FULL_PRECISION,
) -> Generation:
    gen_id = generation_id or generation_id_for(model, chunker, now, retrieval=retrieval, vectors=vectors)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,79}", gen_id):
        raise DynembedError(f"generation id {gen_id!r} must be lowercase letters, digits and dashes")
    return Generation(
        id=gen_id,
        index_name=f"{index_prefix}-{gen_id}",
        model=model,
        chunker=chunker,
        retrieval=retrieval,
        vectors=vectors,
        schema_version=schema_version,
        status=GenerationStatus.BUILDING,
        write_target=False,
    )


def create(registry: Registry, index: ChunkIndex, generation: Generation) -> Generation:
    """Register the generation and create its index; safe to repeat (workflow retries)."""
    registry.create(generation)
    index.ensure_index(generation)
    return registry.get(generation.id)


def bootstrap(registry: Registry, index: ChunkIndex, alias: str, generation: Generation) -> Generation:
    """First generation of a fresh install: active, write target, alias pointing at it."""
    current = find_active(registry)
    if current is not None:
        return current
    create(registry, index, generation)
    index.swap_alias(alias, generation.index_name, None)
    return registry.update(generation.id, status=GenerationStatus.ACTIVE, write_target=True)


def find_active(registry: Registry) -> Generation | None:
    return next((g for g in registry.list() if g.status is GenerationStatus.ACTIVE), None)


def find_standby(registry: Registry) -> Generation | None:
    standbys = [g for g in registry.list() if g.status is GenerationStatus.STANDBY]
    return max(standbys, key=lambda g: g.updated_at) if standbys else None


@dataclass(frozen=True)
class AliasMove:
    alias: str
    before: str | None
    after: str
    active: str
    standby: str | None


def promote(registry: Registry, index: ChunkIndex, alias: str, candidate_id: str) -> AliasMove:
    """One ``_aliases`` request moves the alias; then the registry follows. If the registry
    update fails after the swap, a retry finds the alias already moved and only fixes the registry."""
    candidate = registry.get(candidate_id)
    if candidate.status in (GenerationStatus.FAILED, GenerationStatus.RETIRED):
        raise DynembedError(f"generation {candidate_id} is {candidate.status.value}; it cannot be promoted")
    before = index.alias_target(alias)
    previous = find_active(registry)
    if before != candidate.index_name:
        index.swap_alias(alias, candidate.index_name, before)
    if previous is not None and previous.id != candidate.id:
        registry.update(previous.id, status=GenerationStatus.STANDBY, write_target=True)
    registry.update(candidate.id, status=GenerationStatus.ACTIVE, write_target=True)
    return AliasMove(alias, before, candidate.index_name, candidate.id, previous.id if previous else None)


def rollback(registry: Registry, index: ChunkIndex, alias: str) -> AliasMove:
    """Serve the standby again (one alias request, no reprocessing: it stayed a write target).
    The generation that was active becomes standby, so rolling forward is one request too."""
    standby = find_standby(registry)
    if standby is None:
        raise UnknownGenerationError("no standby generation to roll back to")
    return promote(registry, index, alias, standby.id)


def reject(registry: Registry, candidate_id: str, reason: str) -> Generation:
    """Failed, out of the write targets; the index is kept for inspection."""
    candidate = registry.get(candidate_id)
    if candidate.status is GenerationStatus.ACTIVE:
        raise DynembedError(f"generation {candidate_id} is active; roll back instead of rejecting it")
    report = dict(candidate.report or {})
    report["rejected_reason"] = reason
    return registry.update(candidate_id, status=GenerationStatus.FAILED, write_target=False, report=report)


def retire(registry: Registry, index: ChunkIndex, generation_id: str) -> Generation:
    """Delete a standby's (or failed generation's) index once its retention window has passed."""
    gen = registry.get(generation_id)
    if gen.status is GenerationStatus.ACTIVE:
        raise DynembedError(f"generation {generation_id} is active; it cannot be retired")
    index.delete_index(gen.index_name)
    return registry.update(generation_id, status=GenerationStatus.RETIRED, write_target=False)
