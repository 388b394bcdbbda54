"""Embedding at the provider's quota: the real Titan adapter (``TitanEmbedder`` with its
adaptive rate limiter and bounded retries) against a fake Bedrock that enforces a requests- and
a tokens-per-window quota (sliding windows) and throttles beyond them, as Bedrock does, with
``ThrottlingException`` (HTTP 429) and a message naming the quota.

Several *instances* (each one Lambda process: its own embedder, limiter and threads) take
batches of texts from one queue; a batch that still fails after the bounded retries
(``TransientError``) goes back on the queue, as SQS would redeliver it. The quota window is
scaled (2 s instead of 60) so the benchmark runs in under a minute; the limiter's recovery time
(two windows) is scaled with it.

Reported: achieved throughput against the quota (the binding one), texts lost (must be 0),
throttled calls and retries (bounded per text), redelivered batches.
"""

from __future__ import annotations

import io
import json
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from dynembed.core.errors import EmbeddingIncomplete, TransientError
from dynembed.embedders.bedrock import RetryPolicy, TitanEmbedder
from dynembed.embedders.throttle import AdaptiveRateLimiter


class QuotaProvider:
    """``invoke_model`` under two sliding-window quotas. Throttled calls do not count against
    them. Tokens are counted the provider's way (words × 1.3), not the client's (chars / 4)."""

    def __init__(
        self,
        *,
        requests_per_window: int,
        tokens_per_window: int,
        window_s: float,
        latency_s: float = 0.05,
        clock: Any = time.monotonic,
    ) -> None:
        self.requests_per_window = requests_per_window
        self.tokens_per_window = tokens_per_window
        self.window_s = window_s
        self.latency_s = latency_s
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, int]] = deque()
        self._recent_tokens = 0
        self.accepted: list[tuple[float, int]] = []
        self.throttled = {"requests": 0, "tokens": 0}
        self.embedded: dict[str, int] = {}
        """text → how many times it was embedded."""

    @staticmethod
    def tokens_of(text: str) -> int:
        return max(1, math.ceil(len(text.split()) * 1.3))

    def invoke_model(self, *, modelId: str, body: str, contentType: str, accept: str) -> dict[str, Any]:
        request = json.loads(body)
        text, dimension = request["inputText"], int(request.get("dimensions", 1024))
        tokens = self.tokens_of(text)
        with self._lock:
            now = self._clock()
            while self._recent and self._recent[0][0] <= now - self.window_s:
                self._recent_tokens -= self._recent.popleft()[1]
            if len(self._recent) + 1 > self.requests_per_window:
                self.throttled["requests"] += 1
                raise _throttle("Too many requests, please wait before trying again.")
            if self._recent_tokens + tokens > self.tokens_per_window:
                self.throttled["tokens"] += 1
                raise _throttle("Too many tokens, please wait before trying again.")
            self._recent.append((now, tokens))
            self._recent_tokens += tokens
            self.accepted.append((now, tokens))
            self.embedded[text] = self.embedded.get(text, 0) + 1
        time.sleep(self.latency_s)
        vector = [1.0 / math.sqrt(dimension)] * dimension
        payload = {"embedding": vector, "inputTextTokenCount": tokens}
        return {"body": io.BytesIO(json.dumps(payload).encode())}


def _throttle(message: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        },
        "InvokeModel",
    )


@dataclass
class QuotaBenchOptions:
    texts: Sequence[str]
    instances: int = 3
    threads: int = 4
    batch_size: int = 10
    window_s: float = 2.0
    requests_per_window: int = 60
    tokens_per_window: int = 8_000
    latency_s: float = 0.05
    known_quota: bool = True
    """True: each instance is told the account's quota and starts at quota / instances (the
    reserved concurrency), as ``default_limiter`` does; its real share it must find (token
    counts are only estimates). False: it is told nothing and finds the rate by slow start."""
    max_attempts: int = 6


@dataclass
class QuotaBenchResult:
    seconds: float
    texts: int
    embedded_once: int
    lost: int
    duplicates: int
    achieved_requests_per_s: float
    achieved_tokens_per_s: float
    quota_requests_per_s: float
    quota_tokens_per_s: float
    utilisation: float
    """Achieved / quota of the binding quota, over the whole run."""
    steady_utilisation: float
    """The same after the first two windows (slow start and the first cuts)."""
    throttled: dict[str, int]
    throttled_share: float
    """Throttled calls per accepted call."""
    retries: int
    max_attempts_per_call: int
    redelivered_batches: int
    calls: int
    limiter_rates: list[dict[str, float]] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"{self.texts} texts in {self.seconds:.1f} s on {len(self.limiter_rates)} instances",
            f"achieved {self.achieved_requests_per_s:.1f} requests/s of {self.quota_requests_per_s:.1f}, "
            f"{self.achieved_tokens_per_s:,.0f} tokens/s of {self.quota_tokens_per_s:,.0f}: "
            f"{self.utilisation:.1%} of the binding quota ({self.steady_utilisation:.1%} after the first two windows)",
            f"lost: {self.lost}; embedded twice: {self.duplicates}; redelivered batches: {self.redelivered_batches}",
            f"throttled calls: {sum(self.throttled.values())} ({self.throttled_share:.1%} of accepted; "
            f"requests {self.throttled['requests']}, tokens {self.throttled['tokens']}); retries: {self.retries} "
            f"(at most {self.max_attempts_per_call} attempts per call)",
        ]


def run_quota_bench(options: QuotaBenchOptions) -> QuotaBenchResult:
    provider = QuotaProvider(
        requests_per_window=options.requests_per_window,
        tokens_per_window=options.tokens_per_window,
        window_s=options.window_s,
        latency_s=options.latency_s,
    )
    quota_rps = options.requests_per_window / options.window_s
    quota_tps = options.tokens_per_window / options.window_s
    embedders = []
    for _ in range(options.instances):
        if options.known_quota:  # as default_limiter: a share of the quota to start, all of it at most
            limiter = AdaptiveRateLimiter(
                requests_per_s=quota_rps / options.instances,
                tokens_per_s=quota_tps / options.instances,
                max_requests_per_s=quota_rps,
                max_tokens_per_s=quota_tps,
                recovery_s=2 * options.window_s,
            )
        else:
            limiter = AdaptiveRateLimiter(recovery_s=2 * options.window_s)
        embedders.append(
            TitanEmbedder(
                256,
                client=provider,
                max_workers=options.threads,
                limiter=limiter,
                retry=RetryPolicy(max_attempts=options.max_attempts, base_delay_s=0.05, max_delay_s=1.0),
            )
        )
    jobs: queue.Queue[list[str]] = queue.Queue()
    texts = list(dict.fromkeys(options.texts))
    for start in range(0, len(texts), options.batch_size):
        jobs.put(texts[start : start + options.batch_size])
    done: dict[str, list[float]] = {}
    lock = threading.Lock()
    redelivered = 0

    def work(embedder: TitanEmbedder) -> None:
        nonlocal redelivered
        while True:
            try:
                batch = jobs.get_nowait()
            except queue.Empty:
                return
            with lock:  # the embedding cache: what an earlier delivery embedded is not embedded again
                missing = [text for text in batch if text not in done]
            try:
                vectors = embedder.embed_documents(missing)
            except EmbeddingIncomplete as exc:
                with lock:
                    done.update({missing[i]: v for i, v in exc.vectors.items()})
                    redelivered += 1
                jobs.put(batch)  # what SQS does with a failed message: it comes back
                continue
            except TransientError:
                with lock:
                    redelivered += 1
                jobs.put(batch)
                continue
            with lock:
                done.update(zip(missing, vectors, strict=True))

    started = time.monotonic()
    workers = [threading.Thread(target=work, args=(e,)) for e in embedders]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.monotonic() - started

    accepted = provider.accepted
    tokens = sum(t for _, t in accepted)
    utilisation = max(len(accepted) / (quota_rps * seconds), tokens / (quota_tps * seconds))
    steady_from = started + 2 * options.window_s
    steady = [(t, n) for t, n in accepted if t >= steady_from]
    steady_s = max(1e-9, (accepted[-1][0] if accepted else steady_from) - steady_from)
    steady_util = max(
        len(steady) / (quota_rps * steady_s), sum(n for _, n in steady) / (quota_tps * steady_s)
    )
    calls = sum(e.stats.calls for e in embedders)
    return QuotaBenchResult(
        seconds=seconds,
        texts=len(texts),
        embedded_once=sum(1 for t in texts if provider.embedded.get(t) == 1),
        lost=sum(1 for t in texts if t not in done),
        duplicates=sum(1 for t in texts if provider.embedded.get(t, 0) > 1),
        achieved_requests_per_s=len(accepted) / seconds,
        achieved_tokens_per_s=tokens / seconds,
        quota_requests_per_s=quota_rps,
        quota_tokens_per_s=quota_tps,
        utilisation=utilisation,
        steady_utilisation=steady_util,
        throttled=dict(provider.throttled),
        throttled_share=sum(provider.throttled.values()) / max(1, len(accepted)),
        retries=sum(e.stats.retries for e in embedders),
        max_attempts_per_call=options.max_attempts,
        redelivered_batches=redelivered,
        calls=calls,
        limiter_rates=[
            {
                "requests_per_s": round(e.limiter.requests_per_s, 2),
                "tokens_per_s": round(e.limiter.tokens_per_s, 1),
            }
            for e in embedders
            if e.limiter is not None
        ],
    )
