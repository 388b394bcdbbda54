"""An adaptive rate limiter for a provider's quota: paced calls, AIMD on throttling.

Bedrock's quotas are per account and model (requests and/or tokens per minute), shared by every
Lambda instance that embeds; no instance knows its share. Each process keeps one limiter per
model, shared by its threads, and finds its share the way TCP finds a link's:

- **Pacing.** Every call first reserves its slot: a request costs ``1 / requests_per_s`` of
  time and its tokens ``tokens / tokens_per_s``; the call waits until both budgets have room.
  Calls are spread out, not sent in bursts.
- **Slow start.** Until the first throttle, both rates double every time half a second's worth
  of calls succeeds — up to twice the starting share when the quota is configured (the share
  is ``quota / reserved concurrency``; the configured quota also caps the rate).
- **Multiplicative decrease.** A ``ThrottlingException`` cuts the rate of the budget it names
  ("Too many requests" / "Too many tokens", both when it names neither) to ``decrease`` times
  what the process was really sending (its rate may allow more than its threads send: cutting
  an unused allowance would change nothing) — once per congestion event: the provider remembers a window of past calls, so throttles
  of calls sent before the last cut, or within ``hold_s`` after it, say nothing about the new
  rate and are ignored (without this one burst would cut the rate again and again).
- **Additive increase.** After a cut the rate climbs back linearly: each success adds what
  brings it back to the rate before the cut in ``recovery_s`` (two of the quota's windows: by
  then the provider has forgotten the calls it throttled), and it goes on probing for room.

Defaults (decrease to 0.9, recover in 120 s, hold 30 s, for per-minute quotas) were tuned on
``bench/embed_quota.py`` with the window scaled to 2 s: about 94% of the quota with one throttled
call per eight accepted, nothing lost.

The limiter only paces and adapts; retries (bounded, with jittered backoff) are the caller's, and
a text that still fails raises ``TransientError`` so its job is retried by the queue.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

REQUESTS, TOKENS = "requests", "tokens"
MIN_SAMPLES = 10
"""Slots needed before the measured sending rate is trusted over the configured one."""
TOKEN_CEILING_HEADROOM = 1.5
"""A configured token quota caps the token budget at this multiple of it: the client only
estimates tokens (``dynembed.cost.tokens``), so a cap at the exact quota could hold it below."""


@dataclass
class _Budget:
    rate: float
    ceiling: float | None
    next_free: float = 0.0
    cut_at: float = float("-inf")
    """When this budget was last cut (monotonic clock)."""
    rate_at_cut: float = 0.0
    slow_start: bool = True
    successes: float = 0.0
    threshold: float = float("inf")
    """Slow start ends here (twice the starting share when a quota is configured)."""
    sent: deque[tuple[float, float]] = field(default_factory=deque)
    """(time, amount) of recent slots: what this process really sends, which may be less than
    its rate allows (few threads, slow calls)."""

    def sending_rate(self, now: float, span_s: float) -> float | None:
        """Amount per second over the recent slots; None when too few to say (a quiet process
        must not be cut to a crawl by one throttle)."""
        while self.sent and self.sent[0][0] < now - span_s:
            self.sent.popleft()
        if len(self.sent) < MIN_SAMPLES:
            return None
        covered = max(1.0, now - self.sent[0][0])
        return sum(amount for _, amount in self.sent) / covered

    def cap(self) -> None:
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)


@dataclass
class LimiterStats:
    acquired: int = 0
    waited_s: float = 0.0
    cuts: dict[str, int] = field(default_factory=lambda: {REQUESTS: 0, TOKENS: 0})
    ignored_throttles: int = 0


class AdaptiveRateLimiter:
    def __init__(
        self,
        *,
        requests_per_s: float = 2.0,
        tokens_per_s: float = 2_000.0,
        max_requests_per_s: float | None = None,
        max_tokens_per_s: float | None = None,
        decrease: float = 0.9,
        recovery_s: float = 120.0,
        hold_s: float | None = None,
        min_rate_fraction: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        token_ceiling = max_tokens_per_s * TOKEN_CEILING_HEADROOM if max_tokens_per_s else None
        self._budgets = {
            REQUESTS: _Budget(requests_per_s, max_requests_per_s),
            TOKENS: _Budget(tokens_per_s, token_ceiling),
        }
        for budget in self._budgets.values():
            budget.cap()
            if budget.ceiling is not None:  # a known quota: its share is a good start, not a floor
                budget.threshold = 2 * budget.rate
                budget.rate_at_cut = budget.rate
        self._floor = {name: b.rate * min_rate_fraction for name, b in self._budgets.items()}
        self.decrease = decrease
        self.recovery_s = recovery_s
        self.hold_s = recovery_s / 4 if hold_s is None else hold_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.stats = LimiterStats()

    # ---- reading ------------------------------------------------------------------------------
    @property
    def requests_per_s(self) -> float:
        return self._budgets[REQUESTS].rate

    @property
    def tokens_per_s(self) -> float:
        return self._budgets[TOKENS].rate

    # ---- pacing -------------------------------------------------------------------------------
    def acquire(self, tokens: int) -> float:
        """Wait for this call's slot; returns the time it may be sent (the clock's), which the
        caller hands back to ``on_success`` / ``on_throttle``."""
        with self._lock:
            now = self._clock()
            start = now
            for name, cost in ((REQUESTS, 1.0), (TOKENS, float(max(tokens, 1)))):
                budget = self._budgets[name]
                slot = max(now, budget.next_free)
                budget.next_free = slot + cost / budget.rate
                budget.sent.append((slot, cost))
                start = max(start, slot)
            self.stats.acquired += 1
            self.stats.waited_s += start - now
        if start > now:
            self._sleep(start - now)
        return start

    # ---- adapting -----------------------------------------------------------------------------
    def on_success(self, sent_at: float, tokens: int) -> None:
        with self._lock:
            for name, budget in self._budgets.items():
                amount = 1.0 if name == REQUESTS else float(max(tokens, 1))
                if budget.slow_start:
                    budget.successes += amount
                    if budget.successes >= budget.rate / 2:  # about half a second's worth: double
                        budget.rate = min(2 * budget.rate, budget.threshold)
                        budget.successes = 0
                        budget.slow_start = budget.rate < budget.threshold
                elif sent_at >= budget.cut_at:
                    climb = budget.rate_at_cut * (1 / self.decrease - 1) / self.recovery_s  # per second
                    budget.rate += climb * amount / budget.rate
                budget.cap()

    def on_throttle(self, sent_at: float, kind: str | None = None) -> None:
        """``kind``: which budget the provider said was exceeded (None: it did not say)."""
        with self._lock:
            now = self._clock()
            for name in (kind,) if kind in self._budgets else tuple(self._budgets):
                budget = self._budgets[name]
                if sent_at < budget.cut_at + self.hold_s:
                    self.stats.ignored_throttles += 1
                    continue
                budget.slow_start = False
                sending = budget.sending_rate(now, self.hold_s or 1.0)
                base = min(budget.rate, sending) if sending else budget.rate
                budget.rate = max(self._floor[name], base * self.decrease)
                budget.rate_at_cut = budget.rate
                budget.cut_at = now
                # Calls already given slots at the old rate keep them; later ones use the new rate.
                budget.next_free = max(budget.next_free, now + 1.0 / budget.rate if name == REQUESTS else now)
                self.stats.cuts[name] += 1


def throttle_kind(message: str) -> str | None:
    """Which budget a throttling message names, as Bedrock words them ("Too many requests,
    please wait before trying again." / "Too many tokens, ..."; wording not verified)."""
    lowered = message.lower()
    if "token" in lowered:
        return TOKENS
    if "request" in lowered:
        return REQUESTS
    return None


_shared: dict[str, AdaptiveRateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(key: str, factory: Callable[[], AdaptiveRateLimiter]) -> AdaptiveRateLimiter:
    """One limiter per model per process: every embedder instance and thread shares it."""
    with _shared_lock:
        if key not in _shared:
            _shared[key] = factory()
        return _shared[key]
