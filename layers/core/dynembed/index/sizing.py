"""Memory an index needs, from the k-NN plugin's documented HNSW sizing formula:
``1.1 * (bytes per vector code + 8 * m)`` bytes per vector (OpenSearch docs "Memory estimation":
float32 ``4d``, faiss fp16 ``2d``, byte / Lucene SQ ``d``, binary ``d / 8``).

Figures are for one copy of the index: multiply by ``1 + replicas`` for a domain. In on-disk
mode this is the memory (the quantized graph); the full-precision vectors sit on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynembed.core.models import VectorPrecision, VectorSpec
from dynembed.index.mapping import DEFAULT_M

CODE_BITS: dict[VectorPrecision, int] = {
    VectorPrecision.FLOAT32: 32,
    VectorPrecision.FLOAT16: 16,
    VectorPrecision.BYTE: 8,
    VectorPrecision.BINARY: 1,
}


def code_bytes(precision: VectorPrecision, dimension: int) -> float:
    return dimension * CODE_BITS[precision] / 8


def memory_per_vector(precision: VectorPrecision, dimension: int, m: int = DEFAULT_M) -> float:
    """Bytes of native memory per vector: ``1.1 * (code bytes + 8 * m)``."""
    return 1.1 * (code_bytes(precision, dimension) + 8 * m)


@dataclass(frozen=True)
class IndexSizing:
    precision: VectorPrecision
    dimension: int
    vectors: int
    m: int
    memory_per_vector: float
    """Bytes."""
    index_memory: float
    """Bytes, one copy."""
    disk_per_vector: float
    """Bytes of full-precision vectors kept on disk for rescoring (on-disk mode), else 0."""


def size_index(spec: VectorSpec, dimension: int, vectors: int, m: int = DEFAULT_M) -> IndexSizing:
    per_vector = memory_per_vector(spec.precision, dimension, m)
    return IndexSizing(
        precision=spec.precision,
        dimension=dimension,
        vectors=vectors,
        m=m,
        memory_per_vector=per_vector,
        index_memory=per_vector * vectors,
        disk_per_vector=4.0 * dimension if spec.on_disk else 0.0,
    )
