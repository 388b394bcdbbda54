"""Shadow comparison: how a rebuild's candidate answers real traffic before it serves any.

The search function hands a sample of live queries, with the active generation's answer, to
the shadow queue (``dynembed.query.signals``); the shadow function runs each on the candidate,
as the same caller (same principals, tenant and filters), and records how far the two answers
are apart: doc overlap@10 and rank-biased overlap (p = 0.9) of the doc rankings, and both top
scores. Nothing of the candidate's answer reaches the caller, who already had the active one.

The evaluate step folds the comparisons into the rebuild report (``shadow``), in the shape the
HTML report renders, and the gate may require a minimum mean overlap (``min_shadow_overlap``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dynembed.core.config import METRICS
from dynembed.core.models import GenerationStatus
from dynembed.core.ports import QuerySampleStore, Registry
from dynembed.core.samples import QueryText, ShadowComparison, ShadowJob
from dynembed.quality.overlap import DEFAULT_P, overlap_at_k, rbo
from dynembed.rebuild.progress import BackfillProgress

OVERLAP_K = 10
DISAGREEMENTS = 10
"""Queries listed in the report, lowest overlap first."""

CandidateSearch = Callable[[ShadowJob], tuple[list[str], float | None, int]]
"""Runs a job on its candidate: (doc ranking, top score, chunk hits)."""


def run_shadow(
    job: ShadowJob,
    *,
    search: CandidateSearch,
    registry: Registry,
    store: QuerySampleStore,
    keep_text: bool,
    clock: Callable[[], float] = time.time,
) -> ShadowComparison | None:
    """Compare one live query's answers; None when there is nothing to compare yet or any more:
    the candidate's backfill is still running (a half-filled index would only show how much is
    missing), or it was promoted, rejected or retired since the job was queued."""
    candidate = registry.get(job.candidate)
    if candidate.status not in (GenerationStatus.BUILDING, GenerationStatus.EVALUATING):
        return None
    progress = BackfillProgress.from_record(candidate.backfill)
    if progress is not None and not progress.done:
        return None
    docs, top_score, hits = search(job)
    comparison = ShadowComparison(
        candidate=job.candidate,
        active=job.active,
        at=clock(),
        query=QueryText.of(job.text, keep=keep_text),
        overlap=overlap_at_k(job.active_docs, docs, OVERLAP_K),
        rbo=rbo(job.active_docs, docs, DEFAULT_P),
        active_top_score=job.active_top_score,
        candidate_top_score=top_score,
        active_results=len(job.active_docs),
        candidate_results=hits,
    )
    store.put_comparison(comparison)
    return comparison


class ShadowSummary(BaseModel):
    """The rebuild report's ``shadow`` object (``dynembed.quality.html`` renders this shape)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    generation_id: str
    active_generation: str | None = None
    queries: int = Field(ge=0)
    overlap_at_10: float | None = Field(default=None, alias="overlap@10", serialization_alias="overlap@10")
    rbo: float | None = None
    rbo_p: float = DEFAULT_P
    active_scores: list[float] = Field(default_factory=list)
    candidate_scores: list[float] = Field(default_factory=list)
    """Top-hit score of each compared query (queries with no hit are left out)."""
    disagreements: list[dict[str, Any]] = Field(default_factory=list)
    """``{query, overlap, rbo}``, lowest overlap first."""

    def report(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def summarize_shadow(candidate: str, comparisons: Sequence[ShadowComparison]) -> ShadowSummary:
    if not comparisons:
        return ShadowSummary(generation_id=candidate, queries=0)
    ordered = sorted(comparisons, key=lambda c: (c.overlap, c.rbo, c.query.sha256))
    worst: dict[str, ShadowComparison] = {}
    for comparison in ordered:  # one row per distinct query: its worst comparison
        worst.setdefault(comparison.query.sha256, comparison)
    return ShadowSummary.model_validate(
        {
            "generation_id": candidate,
            "active_generation": comparisons[-1].active,
            "queries": len(comparisons),
            "overlap@10": sum(c.overlap for c in comparisons) / len(comparisons),
            "rbo": sum(c.rbo for c in comparisons) / len(comparisons),
            "active_scores": [c.active_top_score for c in comparisons if c.active_top_score is not None],
            "candidate_scores": [
                c.candidate_top_score for c in comparisons if c.candidate_top_score is not None
            ],
            "disagreements": [
                {"query": c.query.label, "overlap": round(c.overlap, 4), "rbo": round(c.rbo, 4)}
                for c in list(worst.values())[:DISAGREEMENTS]
            ],
        }
    )


def shadow_summary(store: QuerySampleStore, candidate: str) -> ShadowSummary:
    return summarize_shadow(candidate, store.comparisons(candidate))


def process_shadow_batch(event: dict[str, Any], svc: Any) -> dict[str, Any]:
    """The shadow function's SQS batch: each job compared on its own; a job that failed for a
    passing reason is reported as a batch-item failure (SQS retries it, then its DLQ keeps it).
    A malformed job can never succeed: it is logged and dropped (it is only a sample)."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from pydantic import ValidationError

    from dynembed.core.observability import logger

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def handle(record: SQSRecord) -> None:
        try:
            job = ShadowJob.model_validate_json(record.body)
        except ValidationError as exc:
            logger.error("malformed shadow job dropped", message_id=record.message_id, error=str(exc))
            svc.telemetry.count(METRICS.shadow_jobs_malformed)
            return
        comparison = run_shadow(
            job,
            search=svc.shadow_search,
            registry=svc.registry,
            store=svc.query_samples,
            keep_text=svc.settings.query_keep_text,
        )
        if comparison is None:
            svc.telemetry.count(METRICS.shadow_jobs_skipped)
            return
        svc.telemetry.observe(METRICS.shadow_overlap, comparison.overlap)

    with processor(records=event.get("Records", []), handler=handle):
        processor.process()
    return dict(processor.response())
