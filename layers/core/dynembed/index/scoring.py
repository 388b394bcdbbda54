"""Exact scoring as the engine scores: OpenSearch's score per space type, the quantization a
generation's precision applies (``quantize``), rescoring at full precision, pre-filtered top-k.

The scorer stays off BLAS: on small multi-core VMs OpenBLAS's threaded gemv was measured 8-50x
slower than numpy's single-threaded einsum loop (and its spinning worker threads slow
everything after it).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from dynembed.core.errors import DynembedError
from dynembed.core.models import QuantizerState, VectorPrecision, VectorSpec
from dynembed.index import quantize
from dynembed.index.filter_eval import Mask

Matrix = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float32]

SUPPORTED_SPACES = ("cosinesimil", "innerproduct", "l2")
RESCORE_MIN_CANDIDATES = 100
RESCORE_MAX_CANDIDATES = 10_000
"""The k-NN plugin keeps the first pass of a rescored query within [100, 10,000] candidates."""


def prepare_vectors(vectors: Matrix, space: str) -> Matrix:
    """Rows as scored: unit length for cosine (so a dot product is the cosine), else as stored."""
    if space != "cosinesimil" or vectors.size == 0:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def prepare_query(vector: Matrix, space: str) -> Matrix:
    query = np.ascontiguousarray(vector, dtype=np.float32)
    if space != "cosinesimil":
        return query
    norm = float(np.sqrt(np.einsum("i,i->", query, query)))
    return query / np.float32(norm) if norm > 0 else query


def _dot_rows(matrix: Matrix, vector: Matrix) -> Scores:
    """``matrix @ vector`` without BLAS (see the module docstring)."""
    result: Scores = np.einsum("ij,j->i", matrix, vector)
    return result


def space_scores(matrix: Matrix, sq_norms: Scores, query: Matrix, space: str) -> Scores:
    """OpenSearch's score of each row for an already prepared query: cosinesimil (1 + cos) / 2;
    innerproduct 1 + ip when ip >= 0 else 1 / (1 - ip); l2 1 / (1 + d²)."""
    dot = _dot_rows(matrix, query)
    if space == "cosinesimil":
        return ((1.0 + dot) / 2.0).astype(np.float32, copy=False)
    if space == "innerproduct":
        return np.where(dot >= 0, 1.0 + dot, 1.0 / (1.0 - np.minimum(dot, 0.0))).astype(
            np.float32, copy=False
        )
    if space == "l2":
        squared = np.maximum(sq_norms + float(np.einsum("i,i->", query, query)) - 2.0 * dot, 0.0)
        return (1.0 / (1.0 + squared)).astype(np.float32, copy=False)
    raise DynembedError(f"exact k-NN does not support space type {space!r}")


def scores_for(prepared: Matrix, sq_norms: Scores, query: Matrix, space: str) -> Scores:
    """Full-precision scores of prepared rows for a raw query vector."""
    return space_scores(prepared, sq_norms, prepare_query(query, space), space)


def top_rows(scores: Scores, mask: Mask, k: int) -> list[int]:
    """Rows of the k best scores among masked rows, best first (ties: lower row first)."""
    candidates = np.flatnonzero(mask)
    if candidates.size == 0 or k <= 0:
        return []
    candidate_scores = scores[candidates]
    if candidates.size > k:
        best = np.argpartition(-candidate_scores, k - 1)[:k]
        candidates, candidate_scores = candidates[best], candidate_scores[best]
    order = np.lexsort((candidates, -candidate_scores))
    return [int(r) for r in candidates[order]]


def effective_oversample(spec: VectorSpec, dimension: int) -> float | None:
    """The rescoring factor a search uses: the generation's own, else the k-NN plugin's default
    for on-disk indices (KNN 2.19 ``CompressionLevel``/``RescoreContext``: 8x-32x at <= 1000
    dimensions 5.0, above 8x 2.0 and 16x/32x 3.0; 4x 1.0; 2x none). dynembed always sends it
    explicitly, so every engine version and the local scorer use the same factor."""
    if spec.oversample is not None:
        return spec.oversample
    if not spec.on_disk:
        return None
    level = spec.compression_level
    if level in ("8x", "16x", "32x"):
        if dimension <= 1000:
            return 5.0
        return 2.0 if level == "8x" else 3.0
    return 1.0 if level == "4x" else None


def first_pass_size(oversample: float, k: int) -> int:
    return min(RESCORE_MAX_CANDIDATES, max(RESCORE_MIN_CANDIDATES, math.ceil(oversample * k)))


class Scorer:
    """One index's vectors as the engine scores them under one ``VectorSpec``.

    ``full`` are the prepared full-precision rows (rescoring reads them, as the engine reads
    its full-precision vectors from disk); the first pass scores the quantized form. Without
    rescoring the scores are the quantized ones, like the engine's."""

    def __init__(
        self,
        full: Matrix,
        full_sq_norms: Scores,
        space: str,
        spec: VectorSpec,
        state: QuantizerState | None = None,
    ) -> None:
        self.full = full
        self.full_sq_norms = full_sq_norms
        self.space = space
        self.spec = spec
        dimension = full.shape[1] if full.ndim == 2 else 0
        self.oversample = effective_oversample(spec, dimension)
        self.state = state if state is not None and state.precision is spec.precision else None
        if spec.precision in (VectorPrecision.BYTE, VectorPrecision.BINARY) and self.state is None:
            self.state = quantize.train(spec.precision, full)  # untrained generation: learn here
        self.approx = full
        self.approx_sq_norms = full_sq_norms
        self.codes: npt.NDArray[np.uint8] | None = None
        self.thresholds: npt.NDArray[np.float32] | None = None
        if spec.precision is VectorPrecision.FLOAT16:
            self._set_approx(quantize.to_float16(full))
        elif spec.precision is VectorPrecision.BYTE and self.state is not None:
            self._set_approx(quantize.to_byte_grid(full, self._lower, self._upper))
        elif spec.precision is VectorPrecision.BINARY:
            thresholds = quantize.state_thresholds(self.state, dimension)
            self.thresholds = thresholds if thresholds is not None else np.zeros(dimension, np.float32)
            self.codes = quantize.binary_codes(full, self.thresholds)

    @property
    def _lower(self) -> float:
        return float(self.state.lower) if self.state and self.state.lower is not None else 0.0

    @property
    def _upper(self) -> float:
        return float(self.state.upper) if self.state and self.state.upper is not None else 0.0

    def _set_approx(self, approx: Matrix) -> None:
        self.approx = np.ascontiguousarray(approx, dtype=np.float32)
        self.approx_sq_norms = np.einsum("ij,ij->i", self.approx, self.approx).astype(np.float32)

    def first_pass(self, query: Matrix) -> Scores:
        """Scores of every row by the quantized vectors (``query`` prepared)."""
        if self.codes is not None and self.thresholds is not None:
            distance = quantize.hamming(self.codes, quantize.binary_codes(query, self.thresholds)[0])
            return (1.0 / (1.0 + distance)).astype(np.float32)
        if self.spec.precision is VectorPrecision.BYTE and self.state is not None:
            query = quantize.to_byte_grid(query, self._lower, self._upper)
        return space_scores(self.approx, self.approx_sq_norms, query, self.space)

    def top(self, vector: Matrix, mask: Mask, k: int) -> list[tuple[int, float]]:
        """(row, score) of the k best rows among ``mask``, best first."""
        if self.full.shape[0] == 0 or k <= 0:
            return []
        query = prepare_query(vector, self.space)
        scores = self.first_pass(query)
        if self.oversample is None or not self.spec.quantized:
            return [(row, float(scores[row])) for row in top_rows(scores, mask, k)]
        pool = np.asarray(top_rows(scores, mask, first_pass_size(self.oversample, k)), dtype=np.int64)
        if pool.size == 0:
            return []
        exact = space_scores(self.full[pool], self.full_sq_norms[pool], query, self.space)
        keep = np.ones(pool.size, dtype=bool)
        return [(int(pool[i]), float(exact[i])) for i in top_rows(exact, keep, k)]
