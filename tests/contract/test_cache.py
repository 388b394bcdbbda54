"""The EmbeddingCache port's contract, on InMemoryCache and on DynamoEmbeddingCache (moto):
vectors keyed by (model id, content hash), kept as float32 (I4)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynembed.core.ports import EmbeddingCache


def test_missing_hashes_are_left_out(cache: EmbeddingCache) -> None:
    assert cache.get_many("m@1:3", []) == {}
    assert cache.get_many("m@1:3", ["h1"]) == {}


def test_vectors_round_trip_as_float32(cache: EmbeddingCache) -> None:
    # GIVEN a vector whose float64 values float32 cannot hold exactly
    vector = [0.1, -1 / 3, 12345.678901]
    # WHEN it is cached and read back
    cache.put_many("m@1:3", {"h1": vector})
    got = cache.get_many("m@1:3", ["h1", "h2"])
    # THEN it comes back at float32 precision, as plain floats
    assert list(got) == ["h1"]
    assert got["h1"] == np.asarray(vector, dtype=np.float32).astype(float).tolist()
    assert all(type(x) is float for x in got["h1"])


def test_the_same_hash_under_another_model_is_another_entry(cache: EmbeddingCache) -> None:
    # GIVEN one text embedded by two models
    cache.put_many("a@1:2", {"h": [1.0, 0.0]})
    cache.put_many("b@1:2", {"h": [0.0, 1.0]})
    # THEN each model gets its own vector back; a third has none
    assert cache.get_many("a@1:2", ["h"]) == {"h": [1.0, 0.0]}
    assert cache.get_many("b@1:2", ["h"]) == {"h": [0.0, 1.0]}
    assert cache.get_many("c@1:2", ["h"]) == {}


def test_put_overwrites_and_batches_of_any_size_work(cache: EmbeddingCache) -> None:
    # GIVEN more entries than one DynamoDB batch holds (25 writes, 100 reads)
    vectors = {f"h{i}": [float(i), 1.0] for i in range(130)}
    cache.put_many("m@1:2", vectors)
    cache.put_many("m@1:2", {"h0": [9.0, 9.0]})
    # WHEN all are read back, with duplicates asked for
    got = cache.get_many("m@1:2", [*vectors, "h0", "h1"])
    # THEN every one is there, the overwritten one changed
    assert got == {**vectors, "h0": [9.0, 9.0]}


# One cache across examples is fine: each example overwrites the same key.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vector=st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=8))
def test_any_float32_vector_round_trips_exactly(cache: EmbeddingCache, vector: list[float]) -> None:
    # Oracle: a float32 value survives the cache bit for bit.
    cache.put_many("m@1:n", {"h": vector})
    assert cache.get_many("m@1:n", ["h"]) == {"h": vector}
