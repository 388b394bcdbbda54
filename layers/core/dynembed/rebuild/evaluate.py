"""The Evaluate step: the candidate against the active generation on the same golden set,
both searched by explicit generation id, plus probes that metrics alone would miss.

Before searching, a candidate whose precision needs training (byte, binary) gets its quantizer
trained on a sample of its own vectors and stored, so local exact scoring quantizes as the
engine does. The golden-set run also calibrates the candidate's score threshold, measures both
generations' search latency, and the report sizes both indices with the engine's formula.

The golden-set run and the probes come from ``dynembed.quality.measure``, which the canary
runs too. The report is stored on the generation and as Markdown under ``DYNEMBED_REPORTS_DIR``
(S3 in AWS, the local stack's state folder locally; the registry keeps that location), and its
metrics go through ``Telemetry`` with a ``generation`` dimension; the workflow only carries a
small summary. The stored report records where the golden set came from, who it ran as and at
which k, so the canary can run the very same evaluation on the generation later and compare
with these figures.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dynembed.core.config import METRICS, Settings
from dynembed.core.errors import ConfigError, DynembedError
from dynembed.core.models import Generation, GenerationStatus, ScoreThreshold, VectorPrecision
from dynembed.core.observability import logger
from dynembed.core.ports import BlobStore
from dynembed.core.telemetry import Telemetry
from dynembed.embedders.memo import QueryMemos
from dynembed.index import quantize
from dynembed.index.mapping import EMBEDDING_FIELD
from dynembed.index.scoring import prepare_vectors
from dynembed.index.sizing import size_index
from dynembed.quality.evaluation import (
    Comparison,
    GateDecision,
    GoldenSet,
    calibrate_threshold,
    compare,
    gate,
    latency_summary,
    load_golden_set,
    top_hits,
)
from dynembed.quality.measure import IndexSnapshot, Measurement, chunks_for, measure, run_probes, snapshot
from dynembed.quality.report import (
    Coverage,
    EmbeddingUsage,
    EstimateComparison,
    EstimateRow,
    EvaluationReport,
    IndexProfile,
    LatencyStats,
)
from dynembed.quality.shadow import ShadowSummary, shadow_summary
from dynembed.rebuild import generations
from dynembed.rebuild.calibrate import calibration_fields
from dynembed.rebuild.inputs import EvalSetInput, RebuildInput
from dynembed.rebuild.progress import BackfillProgress

if TYPE_CHECKING:
    from dynembed.wiring import Services

MAX_REPORT_BYTES = 300_000
"""DynamoDB items stop at 400 KB, and the report shares its item with the backfill progress
(up to ~80 KB for 256 segments): past this the per-query rows are trimmed in the registry copy
(the Markdown report keeps them all)."""
ESTIMATE_KEY = "rebuild_estimate"
"""Where the Estimate step keeps its figures on the candidate's report."""


# ---- golden sets ---------------------------------------------------------------------------------


def load_eval_set(config: RebuildInput, settings: Settings, blobs: BlobStore | None = None) -> GoldenSet:
    """The golden set the input names (bundled paths or s3:// URIs, read through ``blobs``), or
    DYNEMBED_EVAL_DIR's."""
    return load_eval_set_from(eval_set_of(config.eval, settings), settings, blobs)


def eval_set_of(chosen: EvalSetInput | None, settings: Settings) -> EvalSetInput:
    """``chosen``, or the golden set in DYNEMBED_EVAL_DIR."""
    if chosen is not None:
        return chosen
    if not settings.eval_dir:
        raise ConfigError("eval: no golden set given and DYNEMBED_EVAL_DIR is not set")
    base = settings.eval_dir.rstrip("/")
    return EvalSetInput(queries=f"{base}/queries.jsonl", qrels=f"{base}/qrels.tsv")


def load_eval_set_from(chosen: EvalSetInput, settings: Settings, blobs: BlobStore | None = None) -> GoldenSet:
    if chosen.queries.startswith("s3://") or chosen.qrels.startswith("s3://"):
        folder = Path(tempfile.mkdtemp(prefix="dynembed-eval-"))
        queries = _local_copy(chosen.queries, "queries", folder, settings, blobs)
        qrels = _local_copy(chosen.qrels, "qrels", folder, settings, blobs)
        name = _set_name(chosen.queries)
    else:
        queries = _resolve(chosen.queries, "queries", settings)
        qrels = _resolve(chosen.qrels, "qrels", settings)
        name = queries.parent.name or "golden"
    try:
        return load_golden_set(queries, qrels, name=name)
    except ConfigError as exc:
        raise ConfigError(f"eval: {exc}") from exc


def _set_name(location: str) -> str:
    parts = location.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-2] else "golden"


def _resolve(location: str, field: str, settings: Settings) -> Path:
    """Absolute as given; relative under DYNEMBED_EVAL_DIR or the working directory (the layer has no
    repository: in AWS golden sets are s3:// URIs; the local tooling passes absolute paths)."""
    path = Path(location)
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path(settings.eval_dir) / path] if settings.eval_dir else []
        candidates.append(Path.cwd() / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(f"eval.{field}: file not found: {location} (looked in {looked})")


def _local_copy(location: str, field: str, folder: Path, settings: Settings, blobs: BlobStore | None) -> Path:
    if not location.startswith("s3://"):
        return _resolve(location, field, settings)
    if blobs is None:
        raise ConfigError(f"eval.{field}: {location} is on S3 and no object store was given")
    try:
        body = blobs.read(location)
    except ConfigError as exc:
        raise ConfigError(f"eval.{field}: {exc}") from exc
    target = folder / Path(location).name
    target.write_bytes(body)
    return target


# ---- the step ------------------------------------------------------------------------------------------


def evaluate_candidate(svc: Services, config: RebuildInput) -> dict[str, Any]:
    gen_id = str(config.generation_id)
    candidate = _start_evaluating(svc, gen_id)
    eval_set = eval_set_of(config.eval, svc.settings)
    golden = load_eval_set_from(eval_set, svc.settings, svc.blobs)
    active = _baseline_for(svc, gen_id)
    for gen in (candidate, active):
        if gen is not None:
            svc.index.refresh(gen.index_name)  # so the last backfill writes are searched
    candidate = train_quantizer(svc, candidate)

    # Each golden query is embedded once per model, for the run, the probes and the calibration.
    queries = QueryMemos(svc.embedder_for)
    runs = _measure_both(svc, candidate, active, golden, config, queries)
    checks = _run_checks(svc, candidate, golden, config, queries)
    decision = gate(runs.comparison, checks.probes, config.gate, shadow=checks.shadow)

    report = _build_report(svc, config, candidate, active, golden, runs, checks, decision)
    report_location = store_markdown(report, gen_id, svc)
    publish_metrics(report, gen_id, svc.telemetry)
    record = _registry_record(
        svc, config, candidate, golden, eval_set, report, report_location, runs, checks, queries
    )
    svc.registry.update(gen_id, report=record)
    logger.info(
        "evaluated",
        generation=gen_id,
        passed=decision.passed,
        ndcg=runs.candidate.result.ndcg,
        baseline_ndcg=runs.baseline.result.ndcg if runs.baseline else None,
        reasons=decision.reasons,
    )
    return _workflow_summary(config, candidate, active, report, decision, checks, runs, report_location)


@dataclass
class _GoldenRuns:
    """Both generations on the golden set."""

    candidate: Measurement
    tops: dict[str, tuple[str, float]]
    """Each judged query's top hit on the candidate, by the query's text."""
    threshold: ScoreThreshold | None
    """The candidate's calibrated score threshold."""
    baseline: Measurement | None
    comparison: Comparison


@dataclass
class _Checks:
    """The candidate's checks beyond the golden-set metrics: the probes (with the index
    snapshot and the backfill progress they ran on) and shadowed live traffic."""

    progress: BackfillProgress | None
    failed_docs: set[str]
    seen: IndexSnapshot
    probes: dict[str, bool]
    probe_details: dict[str, Any]
    shadow: ShadowSummary | None


def _start_evaluating(svc: Services, gen_id: str) -> Generation:
    """Mark the candidate as being evaluated; only a new build (or one whose evaluation is
    retried) may be."""
    candidate = svc.registry.get(gen_id)
    if candidate.status not in (GenerationStatus.BUILDING, GenerationStatus.EVALUATING):
        raise DynembedError(f"generation {gen_id} is {candidate.status.value}; only a new build is evaluated")
    return svc.registry.update(gen_id, status=GenerationStatus.EVALUATING)


def _baseline_for(svc: Services, gen_id: str) -> Generation | None:
    """The active generation the candidate is compared with (None on a first build)."""
    active = generations.find_active(svc.registry)
    if active is not None and active.id == gen_id:
        raise DynembedError(f"generation {gen_id} is already active")
    return active


def _measure_both(
    svc: Services,
    candidate: Generation,
    active: Generation | None,
    golden: GoldenSet,
    config: RebuildInput,
    queries: QueryMemos,
) -> _GoldenRuns:
    """The golden set on the candidate, then on the active generation, and their comparison."""
    measured, tops, threshold = _measure_candidate(svc, candidate, golden, config, queries)
    baseline = _measure_baseline(svc, active, golden, config, queries)
    comparison = compare(measured.result, baseline.result if baseline else None)
    return _GoldenRuns(measured, tops, threshold, baseline, comparison)


def _measure_candidate(
    svc: Services, candidate: Generation, golden: GoldenSet, config: RebuildInput, queries: QueryMemos
) -> tuple[Measurement, dict[str, tuple[str, float]], ScoreThreshold | None]:
    """Run the golden set on the candidate and store its calibrated score threshold."""
    measured = measure(svc, candidate, golden, config.eval_principal, config.k, queries)
    # Each judged query's top hit, by its text: the weak-retrieval calibration (quality.signals).
    tops = {golden.queries[qid]: hits[0] for qid, hits in measured.hits.items() if hits}
    threshold = calibrate_threshold(top_hits(measured.hits, golden), config.threshold)
    svc.registry.update(candidate.id, threshold=threshold)
    return measured, tops, threshold


def _measure_baseline(
    svc: Services, active: Generation | None, golden: GoldenSet, config: RebuildInput, queries: QueryMemos
) -> Measurement | None:
    """Run the golden set on the active generation, calibrating its threshold if it has none."""
    if active is None:
        return None
    baseline = measure(svc, active, golden, config.eval_principal, config.k, queries)
    if active.threshold is None:  # e.g. a bootstrapped first generation: calibrate it too
        base_threshold = calibrate_threshold(top_hits(baseline.hits, golden), config.threshold)
        if base_threshold is not None:
            svc.registry.update(active.id, threshold=base_threshold)
    return baseline


def _run_checks(
    svc: Services, candidate: Generation, golden: GoldenSet, config: RebuildInput, queries: QueryMemos
) -> _Checks:
    """Snapshot the candidate's index and run the probes metrics alone would miss (docs the
    backfill reported as failed are not counted again as missing coverage); then summarise
    shadowed live traffic, when query samples are kept."""
    progress = svc.progress.load(candidate.id)
    failed_docs = set(progress.failed_docs) if progress else set()
    seen = snapshot(svc, candidate)
    probes, details = run_probes(
        svc, candidate, golden, seen, chunks_for(config.k), failed_docs=failed_docs, queries=queries
    )
    shadow = shadow_summary(svc.query_samples, candidate.id) if svc.query_samples is not None else None
    return _Checks(progress, failed_docs, seen, probes, details, shadow)


def _build_report(
    svc: Services,
    config: RebuildInput,
    candidate: Generation,
    active: Generation | None,
    golden: GoldenSet,
    runs: _GoldenRuns,
    checks: _Checks,
    decision: GateDecision,
) -> EvaluationReport:
    seen, progress, latencies = checks.seen, checks.progress, runs.candidate.latencies_ms
    wanted = seen.wanted
    return EvaluationReport.build(
        golden=golden,
        comparison=runs.comparison,
        decision=decision,
        policy=config.gate,
        candidate=candidate,
        baseline=active,
        probes=checks.probes,
        coverage=Coverage(docs_indexed=len(seen.indexed & wanted), docs_in_source=len(wanted)),
        latency_ms=latency_summary(latencies),
        latency_samples=len(latencies),
        embeddings=EmbeddingUsage(
            reused=progress.total("reused") if progress else 0,
            computed=progress.total("computed") if progress else 0,
        ),
        shadow=checks.shadow.report() if checks.shadow is not None else None,
        candidate_index=index_profile(candidate, seen.chunks, latencies),
        baseline_index=index_profile(
            active, _chunk_count(svc, active), runs.baseline.latencies_ms if runs.baseline else []
        )
        if active is not None
        else None,
        threshold=runs.threshold,
        estimate=estimate_vs_actual(
            (candidate.report or {}).get(ESTIMATE_KEY), progress, seen.chunks, svc.settings
        ),
    )


def _registry_record(
    svc: Services,
    config: RebuildInput,
    candidate: Generation,
    golden: GoldenSet,
    eval_set: EvalSetInput,
    report: EvaluationReport,
    report_location: str,
    runs: _GoldenRuns,
    checks: _Checks,
    queries: QueryMemos,
) -> dict[str, Any]:
    """The report as the generation keeps it: what the canary needs to rerun this very
    evaluation (golden set, principal, k), the backfill's figures, the calibration, and what
    earlier steps left on the report that must survive this write."""
    progress = checks.progress
    record = _registry_copy(report)
    record.update(
        report_location=report_location,
        probe_details=checks.probe_details,
        eval_set=eval_set.model_dump(),
        eval_principal=list(config.eval_principal),
        backfill={
            "docs": progress.total("docs") if progress else 0,
            "runs": progress.runs if progress else 0,
            "failed_docs": sorted(checks.failed_docs)[:20],
        },
        # Not indexed and not counted as missing: their chunks must not be served at all.
        malformed_items={"count": len(checks.seen.malformed), "examples": checks.seen.malformed[:10]},
    )
    record.update(calibration_fields(svc, candidate, golden, runs.tops, queries))
    record.update(_carried_over(candidate.report or {}))
    return record


def _carried_over(previous: dict[str, Any]) -> dict[str, Any]:
    """Fields of the candidate's earlier report kept across this write: the last failure, and
    the Estimate step's figures with their approval."""
    kept: dict[str, Any] = {}
    if previous.get("failed_reason"):
        kept["previous_failure"] = previous["failed_reason"]
    if previous.get(ESTIMATE_KEY) is not None:  # the Estimate step's figures, and their approval
        kept[ESTIMATE_KEY] = previous[ESTIMATE_KEY]
        if (previous.get("approval") or {}).get("stage") == "estimate":
            kept["estimate_approval"] = previous["approval"]
    return kept


def _workflow_summary(
    config: RebuildInput,
    candidate: Generation,
    active: Generation | None,
    report: EvaluationReport,
    decision: GateDecision,
    checks: _Checks,
    runs: _GoldenRuns,
    report_location: str,
) -> dict[str, Any]:
    """The small summary the workflow carries (Step Functions state stays small; the full
    report is on the generation and in the Markdown file)."""
    threshold = runs.threshold
    return {
        "generation_id": str(config.generation_id),
        "passed": decision.passed,
        "reasons": decision.reasons,
        "notes": decision.notes,
        "k": config.k,
        "candidate": report.candidate_metrics.model_dump(),
        "baseline": report.baseline_metrics.model_dump() if report.baseline_metrics else None,
        "baseline_generation": active.id if active else None,
        "probes": checks.probes,
        "coverage": {"indexed": report.coverage.docs_indexed, "source": report.coverage.docs_in_source}
        if report.coverage
        else None,
        "latency_ms": {"p50": round(report.latency_ms.p50, 2), "p95": round(report.latency_ms.p95, 2)}
        if report.latency_ms
        else None,
        "embeddings": report.embeddings.model_dump() if report.embeddings else None,
        "shadow": {k: (report.shadow or {}).get(k) for k in ("queries", "overlap@10", "rbo")}
        if report.shadow
        else None,
        "retrieval": candidate.retrieval.describe(),
        "precision": candidate.vectors.describe(),
        "index": _profile_summary(report.candidate_index),
        "baseline_index": _profile_summary(report.baseline_index),
        "threshold": round(threshold.value, 6) if threshold is not None else None,
        "estimate": report.estimate.summary() if report.estimate else None,
        "wins": report.wins,
        "losses": report.losses,
        "ties": report.ties,
        "report_location": report_location,
    }


def estimate_vs_actual(
    estimate: dict[str, Any] | None, progress: BackfillProgress | None, chunks: int, settings: Settings
) -> EstimateComparison | None:
    """The Estimate step's figures beside the backfill's: items scanned, chunks indexed, texts
    and tokens embedded, the embedding's cost and the backfill's duration."""
    if not estimate or progress is None:
        return None
    from dynembed.cost.estimate import RebuildEstimate
    from dynembed.cost.prices import load_prices

    est = RebuildEstimate.model_validate(estimate)
    price = load_prices(settings.prices).embedding_price(est.model)
    # The Estimate step's rate probe embedded (and cached) a few of the texts: the backfill's
    # figures leave them out, the rebuild's include them.
    tokens = progress.total("tokens") + est.time.probe_tokens_cached
    computed = progress.total("computed") + est.time.probe_texts_cached
    rows = [
        EstimateRow(figure="items scanned", estimate=est.items, actual=progress.total("docs")),
        EstimateRow(figure="chunks", estimate=est.chunks, actual=chunks),
        EstimateRow(figure="texts embedded", estimate=est.texts_new, actual=computed),
        EstimateRow(figure="tokens embedded", estimate=est.tokens_new, actual=tokens),
        EstimateRow(
            figure="embedding cost (USD)",
            estimate=est.cost.embedding_usd,
            actual=round(price.cost(tokens), 4),
        ),
    ]
    if progress.finished_at is not None:
        rows.append(
            EstimateRow(
                figure="backfill time (s)",
                estimate=est.time.total_s,
                actual=round(progress.finished_at - progress.started_at, 1),
            )
        )
    return EstimateComparison(
        rows=rows, sampled_items=est.sampled_items, exact=est.exact, token_counter=est.token_counter
    )


# ---- quantizer, sizing ---------------------------------------------------------------------------------


def train_quantizer(svc: Services, gen: Generation) -> Generation:
    """Train the generation's quantizer on a sample of its vectors when its precision needs one
    (byte ranges, binary thresholds) and none is stored yet; store it and return the generation."""
    needs = gen.vectors.precision
    if needs not in (VectorPrecision.BYTE, VectorPrecision.BINARY):
        return gen
    if gen.quantizer is not None and gen.quantizer.precision is needs:
        return gen
    rows: list[list[float]] = []
    for _, fields in svc.index.iter_chunks(gen.index_name, [EMBEDDING_FIELD]):
        vector = fields.get(EMBEDDING_FIELD)
        if vector:
            rows.append(vector)
        if len(rows) >= quantize.SAMPLE_SIZE:
            break
    if not rows:
        return gen
    matrix = prepare_vectors(np.asarray(rows, dtype=np.float32), gen.model.space.value)
    state = quantize.train(needs, matrix)
    logger.info("quantizer trained", generation=gen.id, precision=needs.value, vectors=len(rows))
    return svc.registry.update(gen.id, quantizer=state)


def index_profile(gen: Generation, vectors: int, latencies_ms: Sequence[float]) -> IndexProfile:
    sizing = size_index(gen.vectors, gen.model.dimension, vectors)
    return IndexProfile(
        vectors=vectors,
        dimension=gen.model.dimension,
        memory_per_vector_bytes=sizing.memory_per_vector,
        index_memory_bytes=sizing.index_memory,
        disk_per_vector_bytes=sizing.disk_per_vector,
        latency_ms=LatencyStats(**latency_summary(latencies_ms), samples=len(latencies_ms))
        if latencies_ms
        else None,
    )


def _chunk_count(svc: Services, gen: Generation) -> int:
    return sum(1 for _ in svc.index.iter_chunks(gen.index_name, []))


def _profile_summary(profile: IndexProfile | None) -> dict[str, Any] | None:
    if profile is None:
        return None
    latency = profile.latency_ms
    return {
        "vectors": profile.vectors,
        "memory_per_vector_bytes": round(profile.memory_per_vector_bytes, 1),
        "index_memory_bytes": round(profile.index_memory_bytes),
        "latency_ms": {"p50": round(latency.p50, 2), "p95": round(latency.p95, 2)} if latency else None,
    }


# ---- outputs -------------------------------------------------------------------------------------------


def store_markdown(report: EvaluationReport, generation_id: str, svc: Services) -> str:
    """The Markdown report under DYNEMBED_REPORTS_DIR; returns where it can be read again
    (an s3:// URI or an absolute path), which the registry keeps."""
    folder = svc.settings.require("reports_dir").rstrip("/")
    return svc.blobs.write(
        f"{folder}/{generation_id}.md", report.to_markdown().encode("utf-8"), "text/markdown; charset=utf-8"
    )


def _registry_copy(report: EvaluationReport) -> dict[str, Any]:
    """The report as stored on the generation, per-query rows trimmed (worst and best kept)
    if the item would grow past MAX_REPORT_BYTES."""
    record = report.model_dump(mode="json")
    rows = record["per_query"]
    keep = len(rows)
    while keep > 0 and len(json.dumps(record).encode()) > MAX_REPORT_BYTES:
        keep //= 2
        head, tail = (keep + 1) // 2, keep // 2
        record["per_query"] = rows[:head] + (rows[-tail:] if tail else [])
        record["per_query_trimmed"] = {"kept": keep, "total": len(rows)}
    return record


def publish_metrics(report: EvaluationReport, generation_id: str, telemetry: Telemetry) -> None:
    """Quality by generation, graphable in CloudWatch (EMF in Lambda, like every other metric)."""
    dimensions = {"generation": generation_id}
    for name, value in report.cloudwatch_metrics().items():
        telemetry.gauge(name, float(value), "None", dimensions)
    if report.latency_ms is not None:
        telemetry.gauge(METRICS.eval_latency_p95, report.latency_ms.p95, "Milliseconds", dimensions)
    if report.coverage is not None:
        telemetry.gauge(METRICS.eval_coverage, report.coverage.ratio, "None", dimensions)
