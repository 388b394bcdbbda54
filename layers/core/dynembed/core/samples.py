"""Records of live traffic: a sampled query, a shadow search to run, a shadow comparison.

Query text is user data: a record keeps it only when the operator opted in
(``Settings.query_keep_text``); otherwise only its sha256 and its length, which are enough to
count repeats and to name a query in a report without showing it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def query_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class QueryText(BaseModel):
    """A query as a record may keep it: the text (opted in) or only its digest and length."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    chars: int = Field(ge=0)
    text: str | None = None

    @classmethod
    def of(cls, text: str, *, keep: bool) -> QueryText:
        return cls(sha256=query_digest(text), chars=len(text), text=text if keep else None)

    @property
    def label(self) -> str:
        """What reports show: the text, or ``sha256:1a2b3c4d5e6f (42 chars)``."""
        return self.text if self.text is not None else f"sha256:{self.sha256[:12]} ({self.chars} chars)"


@dataclass(frozen=True)
class LiveQuery:
    """One answered live search, as the search flow hands it to ``QuerySignals.observe``."""

    text: str
    principals: tuple[str, ...]
    tenant: str | None
    filters: Mapping[str, Any] | None
    k: int
    generation: str
    model_id: str
    vector: Sequence[float]
    """The query embedding (the generation's model): compared with the golden queries'."""
    hits: tuple[tuple[str, float], ...]
    """(doc id, score) of each chunk hit, best first."""
    latency_ms: float

    @property
    def best_score(self) -> float | None:
        return self.hits[0][1] if self.hits else None

    @property
    def doc_ranking(self) -> list[str]:
        return list(dict.fromkeys(doc for doc, _ in self.hits))


class QuerySample(BaseModel):
    """One sampled live query against one generation."""

    model_config = ConfigDict(frozen=True)

    generation: str
    at: float = Field(default_factory=time.time)
    query: QueryText
    best_score: float | None = None
    """Score of the top chunk; None when nothing was found."""
    results: int = Field(ge=0)
    latency_ms: float = Field(ge=0)
    threshold: float | None = None
    """The generation's calibrated threshold when the query ran (None: not calibrated)."""
    golden_similarity: float | None = None
    """Cosine similarity to the nearest golden query, in the generation's embedding space."""
    nearest_golden: str | None = None
    """Query id of that golden query."""

    @property
    def weak(self) -> bool | None:
        """Below the threshold (nothing found counts as weak); None without a threshold."""
        if self.threshold is None:
            return None
        return self.best_score is None or self.best_score < self.threshold


class ShadowJob(BaseModel):
    """An SQS message: run this live query on the candidate and compare with what the active
    generation answered. Carries the text and the principals (the candidate is searched as the
    caller, with the same filters), never stored as such."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    candidate: str = Field(min_length=1)
    active: str = Field(min_length=1)
    text: str = Field(min_length=1)
    principals: list[str] = Field(min_length=1)
    tenant: str | None = None
    filters: dict[str, Any] | None = None
    k: int = Field(ge=1, le=1000)
    active_docs: list[str]
    """The active generation's doc ranking (chunk hits collapsed to docs), best first."""
    active_top_score: float | None = None
    sampled_at: float = Field(default_factory=time.time)


class ShadowComparison(BaseModel):
    """What one shadow search found: how far the candidate's answer is from the active's."""

    model_config = ConfigDict(frozen=True)

    candidate: str
    active: str
    at: float = Field(default_factory=time.time)
    query: QueryText
    overlap: float = Field(ge=0, le=1)
    """Doc overlap@10."""
    rbo: float = Field(ge=0, le=1)
    """Rank-biased overlap of the doc rankings, p = 0.9."""
    active_top_score: float | None = None
    candidate_top_score: float | None = None
    active_results: int = Field(ge=0)
    candidate_results: int = Field(ge=0)
