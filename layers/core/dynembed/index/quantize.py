"""The engine's vector quantizers, in numpy, so exact scoring locally loses what the engine's
index loses (and the gate measures it). Each one takes vectors as the engine holds them
(unit rows for cosine, see ``scoring.prepare_vectors``).

- ``float16``: faiss SQfp16 stores each value as an IEEE half; queries stay float32.
- ``byte``: Lucene's scalar quantizer (7 bits): every value is clipped to one range, taken from
  the quantiles at ``confidence_interval`` over a sample of the corpus, and rounded to one of 128
  levels; the query is quantized with the same range.
- ``binary``: OpenSearch's 1-bit quantizer: bit d is set when value d is above the mean of
  dimension d over a sample of the corpus (so, the sign of the value minus that mean); the
  first pass ranks by Hamming distance, rescoring re-ranks its candidates at full precision.

The ranges and means are trained once per generation (``train``) and stored with it.
"""

from __future__ import annotations

import base64
import math

import numpy as np
import numpy.typing as npt

from dynembed.core.models import QuantizerState, VectorPrecision

Matrix = npt.NDArray[np.float32]

SAMPLE_SIZE = 10_000
"""Vectors a quantizer trains on (Lucene and OpenSearch sample 25,000 per segment; a range or
a mean per dimension is stable long before that)."""
BYTE_LEVELS = 127
"""Lucene's scalar quantizer keeps 7 bits (0..127) in each byte."""


def default_confidence_interval(dimension: int) -> float:
    """Lucene's default when none is configured: ``max(0.9, 1 - 1 / (1 + d))``."""
    return max(0.9, 1.0 - 1.0 / (1.0 + dimension))


def sample_rows(vectors: Matrix, size: int = SAMPLE_SIZE, seed: int = 0) -> Matrix:
    """At most ``size`` rows, drawn without replacement by a fixed seed (reproducible)."""
    if len(vectors) <= size:
        return vectors
    rows = np.random.default_rng(seed).choice(len(vectors), size=size, replace=False)
    return vectors[np.sort(rows)]


def train(precision: VectorPrecision, vectors: Matrix) -> QuantizerState | None:
    """What ``precision`` needs to learn from the corpus; None when it needs nothing (float32,
    float16) or there is nothing to learn from."""
    if precision in (VectorPrecision.FLOAT32, VectorPrecision.FLOAT16) or len(vectors) == 0:
        return None
    sample = np.asarray(sample_rows(vectors), dtype=np.float32)
    if precision is VectorPrecision.BYTE:
        interval = default_confidence_interval(sample.shape[1])
        tail = (1.0 - interval) / 2.0
        lower, upper = np.quantile(sample, [tail, 1.0 - tail])
        return QuantizerState(
            precision=precision,
            trained_on=len(sample),
            lower=float(lower),
            upper=float(upper),
            confidence_interval=interval,
        )
    means = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
    return QuantizerState(precision=precision, trained_on=len(sample), thresholds=encode_floats(means))


def encode_floats(values: npt.NDArray[np.float32]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode("ascii")


def decode_floats(text: str) -> npt.NDArray[np.float32]:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def to_float16(vectors: Matrix) -> Matrix:
    """Values as faiss SQfp16 decodes them (rounded to the nearest half, held as float32)."""
    return np.asarray(vectors, dtype=np.float16).astype(np.float32)


def byte_levels(vectors: Matrix, lower: float, upper: float) -> npt.NDArray[np.uint8]:
    """The 7-bit level of every value (0..127)."""
    span = upper - lower
    if not math.isfinite(span) or span <= 0:
        return np.zeros(np.shape(vectors), dtype=np.uint8)
    scaled = (np.clip(vectors, lower, upper) - lower) * (BYTE_LEVELS / span)
    codes: npt.NDArray[np.uint8] = np.rint(scaled).astype(np.uint8)
    return codes


def dequantize_bytes(levels: npt.NDArray[np.uint8], lower: float, upper: float) -> Matrix:
    span = upper - lower
    step = span / BYTE_LEVELS if span > 0 else 0.0
    return (lower + levels.astype(np.float32) * np.float32(step)).astype(np.float32)


def to_byte_grid(vectors: Matrix, lower: float, upper: float) -> Matrix:
    """Values as the 7-bit scalar quantizer reconstructs them."""
    return dequantize_bytes(byte_levels(vectors, lower, upper), lower, upper)


def binary_codes(vectors: Matrix, thresholds: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """One bit per dimension (set when above its threshold), packed 8 per byte."""
    matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    return np.packbits(matrix > thresholds, axis=1)


def hamming(codes: npt.NDArray[np.uint8], query_code: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Bits that differ between each row of ``codes`` and ``query_code``."""
    distances: npt.NDArray[np.int64] = np.bitwise_count(np.bitwise_xor(codes, query_code)).sum(
        axis=1, dtype=np.int64
    )
    return distances


def state_thresholds(state: QuantizerState | None, dimension: int) -> npt.NDArray[np.float32] | None:
    if state is None or state.thresholds is None:
        return None
    values = decode_floats(state.thresholds)
    return values if values.shape == (dimension,) else None
