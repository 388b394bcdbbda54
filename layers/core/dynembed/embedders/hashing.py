"""A deterministic feature-hashing embedder: no model, no download, the same vector on every
machine and every run. Tests and benchmarks use it where a real model would only add seconds."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from dynembed.core.models import DistanceSpace, ModelSpec

HASH_DIMENSION = 256
HASH_MODEL_NAME = "hash-256"
HASH_ALGORITHM_VERSION = "1"
"""Bump whenever tokenisation, weighting or hashing changes: old vectors are another space (I1)."""

_WORD = re.compile(r"\w+", re.UNICODE)
_PREFIX_CHARS = 7
"""Words are cut to a 7-character prefix after suffix stripping: a cheap stemmer that, on the
python-faq set, beat both whole words and added bigrams (bigrams collide too often in 256-d)."""
_SUFFIXES = ("ing", "ed", "es", "s")
_EMPTY_FEATURE = "\x00empty"
"""Hashed for texts without a single word, so every vector is a unit vector (cosine spaces
reject zero vectors)."""

# Function words carry no topic; at 256 buckets they would otherwise dominate every vector.
# fmt: off
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "do", "does", "did",
    "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "may",
    "might", "must", "my", "no", "not", "of", "on", "or", "our", "shall", "should", "so", "such", "than",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "too", "us",
    "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "would", "you", "your",
})
# fmt: on


def hash_spec() -> ModelSpec:
    return ModelSpec(
        provider="hash",
        name=HASH_MODEL_NAME,
        version=HASH_ALGORITHM_VERSION,
        dimension=HASH_DIMENSION,
        normalized=True,
        space=DistanceSpace.COSINE,
    )


@lru_cache(maxsize=1 << 16)
def _bucket(feature: str) -> tuple[int, float]:
    """Stable (bucket, sign) for a feature. blake2b, not ``hash()``: Python salts str hashes per
    process, which would give every Lambda container a different vector space."""
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    sign = 1.0 if (value >> 63) & 1 else -1.0
    return value % HASH_DIMENSION, sign


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    return word[:_PREFIX_CHARS]


def _features(text: str) -> Counter[str]:
    features: Counter[str] = Counter(
        _stem(word) for word in _WORD.findall(text.lower()) if word not in _STOPWORDS
    )
    if not features:
        features[_EMPTY_FEATURE] = 1
    return features


def hash_vector(text: str) -> np.ndarray:
    """Signed feature hashing with sublinear term frequency (1 + log tf), L2-normalised."""
    vector = np.zeros(HASH_DIMENSION, dtype=np.float64)
    for feature, count in _features(text).items():
        bucket, sign = _bucket(feature)
        vector[bucket] += sign * (1.0 + math.log(count))
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        # Signed collisions can cancel out exactly; fall back to the empty-text vector.
        return hash_vector("")
    return vector / norm


class HashingEmbedder:
    """``hash-256``: shared words give higher cosine, so retrieval tests mean something, while
    embedding costs microseconds. Queries and documents are embedded alike."""

    def __init__(self) -> None:
        self.spec = hash_spec()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [hash_vector(text).tolist() for text in texts]

    def embed_query(self, text: str) -> list[float]:
        vector: list[float] = hash_vector(text).tolist()
        return vector

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_documents(texts)
