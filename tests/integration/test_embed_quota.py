"""A short run of bench/embed_quota.py's scenario (the real Titan adapter, three instances with
their own limiters, a fake Bedrock throttling beyond its quota): nothing lost, nothing embedded
twice, retries bounded, most of the quota used. Real threads and time, so the bounds are loose;
the benchmark itself checks >= 90% over a longer run."""

from __future__ import annotations

import pytest

from dynembed.core.models import ChunkerSpec
from dynembed.sync.chunking import chunker_for
from dynembed_ops import paths
from dynembed_ops.bench.quota_bench import QuotaBenchOptions, run_quota_bench

pytestmark = pytest.mark.integration


def test_embedding_near_the_quota_loses_nothing() -> None:
    import json

    chunker = chunker_for(ChunkerSpec())
    texts: list[str] = []
    for line in paths.FAQ_CORPUS.read_text().splitlines()[:120]:
        doc = json.loads(line)
        texts += [c.text for c in chunker.chunk([("title", doc["title"]), ("body", doc["body"])])]
    # GIVEN a quota of 40 requests and 6,000 tokens per second-long window, shared by 3 instances
    result = run_quota_bench(
        QuotaBenchOptions(texts=texts[:200], window_s=1.0, requests_per_window=40, tokens_per_window=6_000)
    )
    # THEN every text was embedded exactly once, each call within its attempts
    assert result.lost == 0 and result.duplicates == 0
    assert result.embedded_once == result.texts
    assert result.throttled_share < 0.5
    # AND the quota was mostly used (the benchmark's longer run reaches >= 90%)
    assert result.utilisation > 0.75, result.lines()
