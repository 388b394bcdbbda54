"""How a backfill is cut up: how many parallel-scan segments (one child execution each) and
how many run at once. docs/rebuilds.md ("Tens of millions of items") explains the numbers."""

from __future__ import annotations

import math

from dynembed.core.config import TUNING, Tuning
from dynembed.core.models import ModelSpec
from dynembed.cost.quota import EmbeddingQuota

ITEMS_PER_SEGMENT = 200_000
"""A child execution's share: 200,000 items of 100-item pages are 2,000 pages, 200 tasks of 10
pages (~1,400 history events); even at one page per task (a slow model filling the Lambda's
time) ~14,000, under the 25,000 a Standard execution may hold (tests/unit/test_rebuild_scale.py)."""
MAX_AUTO_SEGMENTS = 256
"""Segments chosen without being asked for: 50 M items are 250. The progress record (one
registry item, rewritten after every page) stays under ~80 KB."""
HEADROOM = 1.5
"""More concurrent segments than the quota needs: each also spends time reading and writing."""


def segments_for(items: int | None, requested: int | None, limit: int, tuning: Tuning = TUNING) -> int:
    if requested is not None:
        return requested
    wanted = math.ceil((items or 0) / ITEMS_PER_SEGMENT)
    return max(tuning.backfill_segments, min(limit, MAX_AUTO_SEGMENTS, wanted))


def concurrency_for(
    model: ModelSpec,
    segments: int,
    requested: int | None,
    tokens_per_text: float | None = None,
    tuning: Tuning = TUNING,
) -> int:
    """Segments at once: for a Bedrock model, what its quota can feed (each task embeds on
    ``embedding_threads`` threads); for a local model every segment (they share one CPU here
    and cost nothing per call)."""
    if requested is not None:
        return min(requested, segments)
    if model.provider != "bedrock":
        return segments
    quota = EmbeddingQuota(
        requests_per_minute=tuning.embedding_requests_per_minute,
        tokens_per_minute=tuning.embedding_tokens_per_minute,
        texts_per_request=96 if "cohere" in model.name else 1,
    )
    rate = quota.texts_per_s(tokens_per_text or tuning.tokens_per_text)
    per_task = tuning.embedding_threads * quota.texts_per_request / tuning.embedding_call_latency_s
    if math.isinf(rate):
        return segments
    return max(1, min(segments, math.ceil(HEADROOM * rate / per_task)))
