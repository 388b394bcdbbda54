"""What a rebuild will cost before it starts: items to scan, chunks, tokens, embeddings reused
versus new, the money and the time.

- Items: the table's ``ItemCount`` (DynamoDB refreshes it about every six hours), refined by a
  sample: the sample says which share of the items are live documents and how many chunks and
  tokens each gives.
- The sample: whole parallel-scan segments picked at random. DynamoDB assigns items to
  segments by their key's hash, so a segment is a random cluster of the table; reading whole
  segments (not the first items of many) avoids favouring whatever was written first. A table
  no larger than the sample is read entirely, and the figures are exact.
- Chunks: the candidate's own chunker on each sampled item; tokens: the model's tokenizer where
  one ships (``dynembed.cost.tokens``), else a characters-per-token figure.
- Reused: chunk texts the embedding cache already holds for the candidate's model (every
  embedding any generation of that model computed is cached there), and repeats of a text.
- Money: the price table (``dynembed.cost.prices``); time: the provider's quota and the
  backfill's concurrency (``dynembed.cost.quota``), or a measured rate for local models.

Figures are extrapolated as per-item ratios (sample total / sample items × items), with a 95%
margin from the spread between sampled segments.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dynembed.core.config import TUNING, Tuning
from dynembed.core.errors import MalformedRecordError
from dynembed.core.models import ChunkerSpec, ModelSpec
from dynembed.core.schema import SourceSchema
from dynembed.cost.capacity import READ_UNIT_BYTES, WRITE_UNIT_BYTES, item_size
from dynembed.cost.prices import PriceTable
from dynembed.cost.quota import EmbeddingQuota
from dynembed.cost.tokens import TokenCounter, counter_for
from dynembed.sync.chunking import chunker_for

DEFAULT_SAMPLE_ITEMS = 1_000
DEFAULT_SAMPLE_SEGMENTS = 32
MAX_SCAN_SEGMENTS = 1_000_000
"""DynamoDB's limit on TotalSegments."""
CACHE_LOOKUP_BATCH = 100
LOCAL_RATE_SAMPLE_TEXTS = 32
LOCAL_RATE_MAX_TEXTS = 256
"""The local rate probe embeds one backfill page's worth of sampled texts (at least 32, at most
this many); they are cached, so the backfill does not embed them again."""
BACKFILL_OVERHEAD_S_PER_DOC = 0.02
"""Time per doc outside embedding: a ledger read and two ledger writes at ~5 ms each plus its
share of the page's scan, cache and bulk requests. A planning figure, not a measurement on AWS
(bench/backfill_scale.py measures the in-process part: well under 1 ms)."""
LEDGER_ITEM_BYTES = 160
"""A ledger row without its chunk keys (ids, version, hashes, timestamps)."""
CHUNK_KEY_BYTES = 20


class Margin(BaseModel):
    model_config = ConfigDict(frozen=True)

    low: int
    high: int


class CostEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    embedding_usd: float
    dynamodb_usd: float
    step_functions_usd: float
    total_usd: float
    embedding_price: str
    """The price used, with its unit and date."""
    prices_unverified: bool


class TimeEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    embed_rate_texts_per_s: float
    rate_source: str
    concurrency: int
    embedding_s: float
    overhead_s: float
    total_s: float
    probe_texts_cached: int = 0
    """Texts the rate probe embedded and cached: part of what the rebuild embeds, done early."""
    probe_tokens_cached: int = 0


class RebuildEstimate(BaseModel):
    """The figures of one rebuild before it runs (JSON-safe, small: it travels in the state)."""

    model_config = ConfigDict(frozen=True)

    model: str
    model_id: str
    chunker_version: str
    items: int = Field(ge=0)
    """Items the backfill scans."""
    item_count_source: str
    """describe_table (ItemCount) or scan (the whole table was read)."""
    sampled_items: int
    sampled_segments: int
    exact: bool
    """The sample was the whole table."""
    docs: int
    """Live documents with content among the items."""
    chunks: int
    tokens: int
    texts_new: int
    """Chunk texts the model will embed."""
    texts_reused: int
    tokens_new: int
    chunks_margin: Margin | None = None
    tokens_new_margin: Margin | None = None
    token_counter: str
    tokens_exact: bool
    avg_item_bytes: float
    cost: CostEstimate
    time: TimeEstimate
    created_at: float = Field(default_factory=lambda: time.time())

    def lines(self) -> list[str]:
        """A person's reading of it, one figure per line."""
        how = "the whole table" if self.exact else f"{self.sampled_items:,} sampled items"
        token_note = "" if self.tokens_exact else f" ({self.token_counter}, unverified for this model)"
        lines = [
            f"items to scan: {self.items:,} ({self.item_count_source}); docs with content: {self.docs:,} (from {how})",
            f"chunks: {self.chunks:,}{_margin(self.chunks_margin)}; tokens: {self.tokens:,}{token_note}",
            f"embeddings: {self.texts_new:,} new ({self.tokens_new:,} tokens{_margin(self.tokens_new_margin)}), "
            f"{self.texts_reused:,} reused from the cache",
            f"cost: ${self.cost.total_usd:,.2f} (embedding ${self.cost.embedding_usd:,.2f} at {self.cost.embedding_price}; "
            f"DynamoDB ${self.cost.dynamodb_usd:,.2f}; Step Functions ${self.cost.step_functions_usd:,.2f})"
            + (" — prices not verified, see docs/cost.md" if self.cost.prices_unverified else ""),
            f"time: {_duration(self.time.total_s)} ({self.time.embed_rate_texts_per_s:,.1f} texts/s from "
            f"{self.time.rate_source}; {self.time.concurrency} concurrent segments)",
        ]
        return lines


def _margin(margin: Margin | None) -> str:
    return f" (95%: {margin.low:,}–{margin.high:,})" if margin else ""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@dataclass
class _Segment:
    """What one sampled segment holds, per item totals."""

    items: int = 0
    docs: int = 0
    chunks: int = 0
    tokens: int = 0
    new_tokens: int = 0
    new_texts: int = 0
    bytes: int = 0


@dataclass
class _Sample:
    segments: list[_Segment] = field(default_factory=list)
    hashes: dict[str, int] = field(default_factory=dict)
    """content hash → tokens, distinct texts of the sample."""
    owner: dict[str, int] = field(default_factory=dict)
    """content hash → the segment whose item first had it."""

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.segments)


def _choose_segments(
    count: int | None, sample_items: int, sample_segments: int, rng: random.Random
) -> tuple[int, list[int]]:
    if count is None or count <= sample_items:
        return 1, [0]
    per_segment = max(1, sample_items // sample_segments)
    total = min(MAX_SCAN_SEGMENTS, max(sample_segments, math.ceil(count / per_segment)))
    return total, sorted(rng.sample(range(total), min(sample_segments, total)))


def _read_segment(source: Any, segment: int, total: int, cap: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while len(items) < cap:
        page, start = source.scan_segment(segment, total, start, min(500, cap - len(items)))
        items.extend(page)
        if not start:
            break
    return items


def estimate_rebuild(
    *,
    source: Any,
    schema: SourceSchema,
    cache: Any | None,
    model: ModelSpec,
    chunker: ChunkerSpec,
    concurrency: int,
    prices: PriceTable,
    embedder_for: Callable[[ModelSpec], Any] | None = None,
    tuning: Tuning = TUNING,
    pages_per_task: int = 10,
    page_size: int = TUNING.backfill_page_size,
    sample_items: int = DEFAULT_SAMPLE_ITEMS,
    sample_segments: int = DEFAULT_SAMPLE_SEGMENTS,
    counter: TokenCounter | None = None,
    seed: int = 0,
) -> RebuildEstimate:
    """The estimate for building ``model`` + ``chunker`` over ``source``. Reads at most about
    ``sample_items`` items (a few more when the table grew since its ItemCount), embeds
    nothing unless the model is local (a few texts, to measure its rate)."""
    rng = random.Random(seed)
    counter = counter or counter_for(model.name)
    count = source.approximate_count()
    total_segments, chosen = _choose_segments(count, sample_items, sample_segments, rng)
    cap = 4 * max(1, sample_items // len(chosen)) if total_segments > 1 else math.inf
    chunk = chunker_for(chunker).chunk
    sample = _Sample()
    texts: dict[str, str] = {}
    for number, segment in enumerate(chosen):
        seg = _Segment()
        for item in _read_segment(source, segment, total_segments, int(min(cap, 10**12))):
            seg.items += 1
            seg.bytes += item_size(item)
            try:
                doc_id = schema.id_of(item)
                schema.version_of(item, doc_id)
            except MalformedRecordError:
                continue
            if schema.tombstone and schema.tombstone.is_tombstoned(item):
                continue
            chunks = chunk(schema.content_of(item))
            if not chunks:
                continue
            seg.docs += 1
            seg.chunks += len(chunks)
            for piece in chunks:
                tokens = counter.count(piece.text)
                seg.tokens += tokens
                if piece.content_hash not in sample.hashes:
                    sample.hashes[piece.content_hash] = tokens
                    sample.owner[piece.content_hash] = number
                    texts[piece.content_hash] = piece.text
        sample.segments.append(seg)
    cached = _cached(cache, model.model_id, list(sample.hashes))
    for content_hash, tokens in sample.hashes.items():
        if content_hash not in cached:
            seg = sample.segments[sample.owner[content_hash]]
            seg.new_texts += 1
            seg.new_tokens += tokens

    sampled = sample.total("items")
    exact = total_segments == 1
    items = sampled if exact else max(int(count or 0), sampled)
    scale = items / sampled if sampled else 0.0

    def scaled(name: str) -> int:
        return round(sample.total(name) * scale)

    docs, chunks_n, tokens_n = scaled("docs"), scaled("chunks"), scaled("tokens")
    texts_new, tokens_new = scaled("new_texts"), scaled("new_tokens")
    avg_bytes = sample.total("bytes") / sampled if sampled else 0.0
    cost = _cost(
        prices, model, items, docs, chunks_n, texts_new, tokens_new, avg_bytes, page_size, pages_per_task
    )
    timing = _time(
        model,
        embedder_for,
        cache,
        texts,
        sample.hashes,
        cached,
        texts_new,
        docs,
        tokens_n,
        chunks_n,
        concurrency,
        tuning,
        page_texts=round(page_size * chunks_n / docs) if docs else LOCAL_RATE_SAMPLE_TEXTS,
    )
    return RebuildEstimate(
        model=model.name,
        model_id=model.model_id,
        chunker_version=chunker.version,
        items=items,
        item_count_source="scan" if exact else "describe_table",
        sampled_items=sampled,
        sampled_segments=len(chosen),
        exact=exact,
        docs=docs,
        chunks=chunks_n,
        tokens=tokens_n,
        texts_new=texts_new,
        texts_reused=max(0, chunks_n - texts_new),
        tokens_new=tokens_new,
        chunks_margin=None if exact else _ratio_margin(sample.segments, "chunks", items),
        tokens_new_margin=None if exact else _ratio_margin(sample.segments, "new_tokens", items),
        token_counter=counter.name,
        tokens_exact=counter.exact,
        avg_item_bytes=round(avg_bytes, 1),
        cost=cost,
        time=timing,
    )


def _cached(cache: Any | None, model_id: str, hashes: Sequence[str]) -> set[str]:
    if cache is None or not hashes:
        return set()
    found: set[str] = set()
    for start in range(0, len(hashes), CACHE_LOOKUP_BATCH):
        found.update(cache.get_many(model_id, list(hashes[start : start + CACHE_LOOKUP_BATCH])))
    return found


def _ratio_margin(segments: Sequence[_Segment], name: str, items: int) -> Margin | None:
    """95% interval of a ratio estimate from a cluster sample (between-segment variance)."""
    sizes = [s.items for s in segments if s.items]
    if len(sizes) < 2:
        return None
    totals = [getattr(s, name) for s in segments if s.items]
    ratio = sum(totals) / sum(sizes)
    mean_size = statistics.fmean(sizes)
    residuals = [(t - ratio * n) / mean_size for t, n in zip(totals, sizes, strict=True)]
    se = math.sqrt(sum(r * r for r in residuals) / (len(sizes) * (len(sizes) - 1)))
    half = 1.96 * se * items
    centre = ratio * items
    return Margin(low=max(0, round(centre - half)), high=round(centre + half))


def _cost(
    prices: PriceTable,
    model: ModelSpec,
    items: int,
    docs: int,
    chunks: int,
    texts_new: int,
    tokens_new: int,
    avg_bytes: float,
    page_size: int,
    pages_per_task: int,
) -> CostEstimate:
    """Embedding from the tokens; DynamoDB from the backfill's requests per doc (a consistent
    scan, a ledger read, the ledger's begin and commit writes, a cache read per chunk and a
    cache write per new text); Step Functions from its transitions per task."""
    price = prices.embedding_price(model.name)
    embedding = price.cost(tokens_new)
    chunks_per_doc = chunks / docs if docs else 0.0
    ledger_bytes = LEDGER_ITEM_BYTES + CHUNK_KEY_BYTES * chunks_per_doc
    vector_bytes = 4 * model.dimension + 100
    rru = items * avg_bytes / READ_UNIT_BYTES + docs + chunks * math.ceil(vector_bytes / READ_UNIT_BYTES)
    wru = docs * (1 + math.ceil(ledger_bytes / WRITE_UNIT_BYTES)) + texts_new * math.ceil(
        vector_bytes / WRITE_UNIT_BYTES
    )
    dynamodb = prices.aws_cost("dynamodb_rru", rru) + prices.aws_cost("dynamodb_wru", wru)
    tasks = math.ceil(items / max(1, page_size * pages_per_task))
    transitions = tasks * 2 + 40  # BackfillPage + SegmentDone per task, plus the fixed states
    sfn = prices.aws_cost("sfn_transition", transitions)
    used = ["dynamodb_rru", "dynamodb_wru", "sfn_transition"]
    unverified = not price.verified or any(not prices.aws[name].verified for name in used)
    return CostEstimate(
        embedding_usd=round(embedding, 4),
        dynamodb_usd=round(dynamodb, 4),
        step_functions_usd=round(sfn, 4),
        total_usd=round(embedding + dynamodb + sfn, 4),
        embedding_price=f"${price.usd:g} per {price.per:,.0f} {price.unit} ({price.as_of})",
        prices_unverified=unverified,
    )


def _time(
    model: ModelSpec,
    embedder_for: Callable[[ModelSpec], Any] | None,
    cache: Any | None,
    texts: dict[str, str],
    hashes: dict[str, int],
    cached: set[str],
    texts_new: int,
    docs: int,
    tokens: int,
    chunks: int,
    concurrency: int,
    tuning: Tuning,
    page_texts: int = 0,
) -> TimeEstimate:
    tokens_per_text = tokens / chunks if chunks else tuning.tokens_per_text
    probed: list[str] = []
    if model.provider == "bedrock":
        quota = EmbeddingQuota(
            requests_per_minute=tuning.embedding_requests_per_minute,
            tokens_per_minute=tuning.embedding_tokens_per_minute,
            texts_per_request=96 if "cohere" in model.name else 1,
        )
        provider_rate = quota.texts_per_s(tokens_per_text) * 0.9  # the limiter keeps ~90% of it
        task_rate = tuning.embedding_threads * quota.texts_per_request / tuning.embedding_call_latency_s
        source = "the configured Bedrock quota (TUNING) at 90%"
    else:
        provider_rate, probed = _local_rate(model, embedder_for, cache, texts, hashes, cached, page_texts)
        task_rate = provider_rate
        concurrency = 1  # one process, one CPU: concurrent segments share it
        source = "a measured local rate" if embedder_for else "no embedder given"
    rate = min(provider_rate, task_rate * concurrency)
    if math.isinf(rate):  # nothing to measure with: say so rather than put Infinity in JSON
        rate, source = 0.0, "not measured (no embedder)"
    embedding_s = texts_new / rate if rate > 0 else 0.0
    overhead_s = docs * BACKFILL_OVERHEAD_S_PER_DOC / max(1, concurrency)
    return TimeEstimate(
        embed_rate_texts_per_s=round(rate, 2),
        rate_source=source,
        concurrency=concurrency,
        embedding_s=round(embedding_s, 1),
        overhead_s=round(overhead_s, 1),
        total_s=round(embedding_s + overhead_s, 1),
        probe_texts_cached=len(probed),
        probe_tokens_cached=sum(hashes[h] for h in probed),
    )


def _local_rate(
    model: ModelSpec,
    embedder_for: Callable[[ModelSpec], Any] | None,
    cache: Any | None,
    texts: dict[str, str],
    hashes: dict[str, int],
    cached: set[str],
    page_texts: int = 0,
) -> tuple[float, list[str]]:
    """Texts per second of a local model (after one warm-up call) on sampled chunk texts the
    cache does not hold yet, in one call of a backfill page's size (a batch is padded to its
    longest text, so a small probe batch runs faster than the pages will), and the hashes of
    those texts: their vectors go to the cache, so the backfill reuses them instead of
    embedding them again (I4)."""
    if embedder_for is None:
        return math.inf, []
    size = min(max(LOCAL_RATE_SAMPLE_TEXTS, page_texts), LOCAL_RATE_MAX_TEXTS)
    picked = [h for h in hashes if h not in cached][:size]
    sample = [texts[h] for h in picked] or list(texts.values())[:8]
    if not sample:
        return math.inf, []
    embedder = embedder_for(model)
    embedder.embed_documents(["warm up"])
    started = time.perf_counter()
    vectors = embedder.embed_documents(sample)
    elapsed = time.perf_counter() - started
    stored: list[str] = []
    if cache is not None and picked:
        cache.put_many(model.model_id, dict(zip(picked, vectors, strict=True)))
        stored = picked
    return (len(sample) / elapsed if elapsed > 0 else math.inf), stored
