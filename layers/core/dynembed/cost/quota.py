"""From the embedding provider's quota to the sync function's reserved concurrency and batch
size, and to the time a backfill takes.

The quota is the account's, per model and region (Service Quotas, service ``bedrock``:
"On-demand InvokeModel tokens per minute for ${model}" and, where still enforced, the
requests-per-minute row). The defaults in ``TUNING`` are planning placeholders, not AWS's
defaults (those were not found): set the applied values before deploying.

The formula (docs/cost.md, "Sizing the sync function"):

- quota rate ``Q`` texts/s = min(RPM / 60 × texts per request, TPM / 60 / tokens per text);
- one sync invocation embeds ``threads / call_latency_s`` texts/s when nothing throttles it;
- reserved concurrency ``N = ceil(headroom × Q × call_latency_s / threads)`` (at least 2, at
  most ``max_concurrency``, the OpenSearch domain's bulk-writer budget): enough invocations to
  keep the quota busy while some of them read and write, few enough that more would only be
  throttled;
- batch size ``B = floor(batch_time_fraction × timeout × (Q / N) / texts per job)`` (1–100):
  a batch's texts, at its share of the quota, take at most that fraction of the timeout, so a
  throttled batch still finishes and is not retried whole.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field


class EmbeddingQuota(BaseModel):
    model_config = ConfigDict(frozen=True)

    requests_per_minute: int | None = Field(default=None, gt=0)
    """None: not enforced (Bedrock's runtime endpoint now throttles by tokens only)."""
    tokens_per_minute: int | None = Field(default=None, gt=0)
    texts_per_request: int = Field(default=1, ge=1)
    """Titan v2: 1 (one inputText per call); Cohere v3: up to 96."""

    def texts_per_s(self, tokens_per_text: float) -> float:
        limits = []
        if self.requests_per_minute:
            limits.append(self.requests_per_minute / 60.0 * self.texts_per_request)
        if self.tokens_per_minute:
            limits.append(self.tokens_per_minute / 60.0 / max(tokens_per_text, 1.0))
        return min(limits) if limits else math.inf


class SyncSizing(BaseModel):
    model_config = ConfigDict(frozen=True)

    reserved_concurrency: int
    batch_size: int
    quota_texts_per_s: float
    per_invocation_texts_per_s: float


def sync_sizing(
    quota: EmbeddingQuota,
    *,
    tokens_per_text: float,
    texts_per_job: float,
    threads: int,
    call_latency_s: float,
    timeout_s: float,
    max_concurrency: int,
    headroom: float = 1.25,
    batch_time_fraction: float = 0.5,
) -> SyncSizing:
    """The formula above; every input is documented on ``Tuning``."""
    rate = quota.texts_per_s(tokens_per_text)
    per_invocation = threads * quota.texts_per_request / call_latency_s
    if math.isinf(rate):
        concurrency = max_concurrency
        share = per_invocation
    else:
        concurrency = min(max_concurrency, max(2, math.ceil(headroom * rate / per_invocation)))
        share = min(per_invocation, rate / concurrency)
    batch = math.floor(batch_time_fraction * timeout_s * share / max(texts_per_job, 1.0))
    return SyncSizing(
        reserved_concurrency=concurrency,
        batch_size=min(100, max(1, batch)),
        quota_texts_per_s=rate,
        per_invocation_texts_per_s=per_invocation,
    )
