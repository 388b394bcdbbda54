"""Quantizers and the scorer that applies them: what local exact scoring loses, as the engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dynembed.core.models import QuantizerState, VectorPrecision, VectorSpec
from dynembed.index import quantize
from dynembed.index.scoring import (
    Scorer,
    effective_oversample,
    first_pass_size,
    prepare_vectors,
    scores_for,
    top_rows,
)
from dynembed.index.sizing import memory_per_vector, size_index

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(3)
UNIT = prepare_vectors(RNG.standard_normal((300, 32)).astype(np.float32), "cosinesimil")
NORMS = np.einsum("ij,ij->i", UNIT, UNIT).astype(np.float32)
EVERYONE = np.ones(len(UNIT), dtype=bool)


def test_float16_rounds_every_value_to_the_nearest_half() -> None:
    assert np.array_equal(quantize.to_float16(UNIT), UNIT.astype(np.float16).astype(np.float32))


def test_byte_training_takes_lucene_quantiles_and_the_grid_has_128_levels() -> None:
    state = quantize.train(VectorPrecision.BYTE, UNIT)
    assert state is not None and state.trained_on == len(UNIT)
    assert state.confidence_interval == pytest.approx(max(0.9, 1 - 1 / 33))
    tail = (1 - state.confidence_interval) / 2
    assert state.lower == pytest.approx(float(np.quantile(UNIT, tail)))
    assert state.upper == pytest.approx(float(np.quantile(UNIT, 1 - tail)))
    levels = quantize.byte_levels(UNIT, state.lower, state.upper)
    assert levels.min() == 0 and levels.max() == 127


@given(
    arrays(np.float32, 20, elements=st.floats(-1, 1, width=32)), st.floats(-0.5, -0.01), st.floats(0.01, 0.5)
)
def test_byte_reconstruction_is_within_half_a_step_inside_the_range(
    values: np.ndarray, lower: float, upper: float
) -> None:
    grid = quantize.to_byte_grid(values, lower, upper)
    step = (upper - lower) / 127
    inside = (values >= lower) & (values <= upper)
    assert np.all(np.abs(grid[inside] - values[inside]) <= step / 2 + 1e-6)
    assert np.all(grid[values < lower] == pytest.approx(lower)) and np.all(grid <= upper + 1e-6)


def test_binary_bits_are_set_above_the_trained_mean_of_their_dimension() -> None:
    state = quantize.train(VectorPrecision.BINARY, UNIT)
    assert state is not None and state.thresholds is not None
    means = quantize.decode_floats(state.thresholds)
    assert np.allclose(means, UNIT.mean(axis=0), atol=1e-6)
    codes = quantize.binary_codes(UNIT, means)
    assert codes.shape == (len(UNIT), 4)  # 32 bits in 4 bytes
    assert np.array_equal(np.unpackbits(codes, axis=1).astype(bool), means < UNIT)


@given(
    st.lists(st.lists(st.booleans(), min_size=16, max_size=16), min_size=1, max_size=10),
    st.lists(st.booleans(), min_size=16, max_size=16),
)
def test_hamming_counts_the_differing_bits(rows: list[list[bool]], query: list[bool]) -> None:
    codes = np.packbits(np.asarray(rows, dtype=bool), axis=1)
    query_code = np.packbits(np.asarray(query, dtype=bool))
    expected = [sum(a != b for a, b in zip(row, query, strict=True)) for row in rows]
    assert quantize.hamming(codes, query_code).tolist() == expected


def test_a_stored_state_survives_json() -> None:
    state = quantize.train(VectorPrecision.BINARY, UNIT)
    assert state is not None
    again = QuantizerState.model_validate_json(state.model_dump_json())
    assert np.array_equal(
        quantize.decode_floats(again.thresholds or ""), quantize.decode_floats(state.thresholds or "")
    )


def test_float32_and_float16_need_no_training() -> None:
    assert quantize.train(VectorPrecision.FLOAT32, UNIT) is None
    assert quantize.train(VectorPrecision.FLOAT16, UNIT) is None
    assert quantize.train(VectorPrecision.BYTE, UNIT[:0]) is None


# ---- the scorer -------------------------------------------------------------------------------------


def exact_top(query: np.ndarray, k: int) -> list[int]:
    return top_rows(scores_for(UNIT, NORMS, query, "cosinesimil"), EVERYONE, k)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_float32_scoring_is_exact(seed: int) -> None:
    query = np.random.default_rng(seed).standard_normal(32).astype(np.float32)
    got = Scorer(UNIT, NORMS, "cosinesimil", VectorSpec()).top(query, EVERYONE, 10)
    assert [row for row, _ in got] == exact_top(query, 10)


def test_rescoring_a_pool_that_holds_every_row_is_exact_for_any_precision() -> None:
    # GIVEN fewer rows than the 100-candidate minimum of a rescored first pass
    query = RNG.standard_normal(32).astype(np.float32)
    for precision in ("float16", "byte", "binary"):
        spec = VectorSpec(precision=precision, oversample=1.0)
        scorer = Scorer(UNIT[:90], NORMS[:90], "cosinesimil", spec, quantize.train(spec.precision, UNIT[:90]))
        got = scorer.top(query, EVERYONE[:90], 5)
        want = top_rows(scores_for(UNIT[:90], NORMS[:90], query, "cosinesimil"), EVERYONE[:90], 5)
        # THEN the rescored ranking and scores are the full-precision ones
        assert [row for row, _ in got] == want
        exact = scores_for(UNIT[:90], NORMS[:90], query, "cosinesimil")
        assert [score for _, score in got] == pytest.approx([float(exact[r]) for r in want])


def test_binary_without_rescoring_scores_by_hamming_distance() -> None:
    state = quantize.train(VectorPrecision.BINARY, UNIT)
    scorer = Scorer(UNIT, NORMS, "cosinesimil", VectorSpec(precision="binary"), state)
    query = UNIT[7] * 3.0
    row, score = scorer.top(query, EVERYONE, 1)[0]
    assert row == 7 and score == 1.0  # its own bits: distance 0, score 1 / (1 + 0)


def test_the_filter_applies_before_the_quantized_first_pass() -> None:
    allowed = np.zeros(len(UNIT), dtype=bool)
    allowed[[3, 5]] = True
    for spec in (VectorSpec(precision="binary", oversample=2.0), VectorSpec(precision="byte")):
        scorer = Scorer(UNIT, NORMS, "cosinesimil", spec, quantize.train(spec.precision, UNIT))
        assert {row for row, _ in scorer.top(UNIT[0], allowed, 10)} == {3, 5}


def test_quantization_loses_some_ranking_and_more_bits_lose_less() -> None:
    queries = RNG.standard_normal((40, 32)).astype(np.float32)
    recall = {}
    for precision in ("float16", "byte", "binary"):
        spec = VectorSpec(precision=precision)
        scorer = Scorer(UNIT, NORMS, "cosinesimil", spec, quantize.train(spec.precision, UNIT))
        found = sum(len({r for r, _ in scorer.top(q, EVERYONE, 10)} & set(exact_top(q, 10))) for q in queries)
        recall[precision] = found / (10 * len(queries))
    assert recall["float16"] == 1.0 and recall["float16"] >= recall["byte"] > recall["binary"]


@pytest.mark.parametrize(
    ("spec", "dimension", "factor"),
    [
        (VectorSpec(), 384, None),
        (VectorSpec(precision="binary"), 384, None),  # in memory: no default rescoring
        (VectorSpec(precision="binary", oversample=1.5), 384, 1.5),
        (VectorSpec(precision="binary", on_disk=True), 384, 5.0),
        (VectorSpec(precision="binary", on_disk=True), 1024, 3.0),
        (VectorSpec(precision="byte", on_disk=True), 1024, 1.0),
        (VectorSpec(precision="float16", on_disk=True), 1024, None),
    ],
)
def test_the_rescoring_factor_follows_the_k_nn_plugin(
    spec: VectorSpec, dimension: int, factor: float | None
) -> None:
    assert effective_oversample(spec, dimension) == factor


def test_the_first_pass_stays_within_100_and_10000_candidates() -> None:
    assert (first_pass_size(3.0, 10), first_pass_size(3.0, 50), first_pass_size(100.0, 500)) == (
        100,
        150,
        10_000,
    )


# ---- sizing -------------------------------------------------------------------------------------------


def test_memory_follows_the_documented_hnsw_formula() -> None:
    # 1.1 * (code bytes + 8 * 16) at d = 1024: float32 4096, fp16 2048, byte 1024, binary 128
    assert [
        memory_per_vector(VectorPrecision(p), 1024) for p in ("float32", "float16", "byte", "binary")
    ] == pytest.approx([1.1 * (4096 + 128), 1.1 * (2048 + 128), 1.1 * (1024 + 128), 1.1 * (128 + 128)])
    # research note's worked figure: 1M x 1024-d float32 at m = 16 is ~4.65 GB
    assert size_index(VectorSpec(), 1024, 1_000_000).index_memory == pytest.approx(4.6464e9, rel=1e-3)
    on_disk = size_index(VectorSpec(precision="binary", on_disk=True), 384, 10)
    assert on_disk.disk_per_vector == 4 * 384 and on_disk.index_memory == pytest.approx(10 * 1.1 * (48 + 128))
