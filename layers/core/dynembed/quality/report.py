"""The evaluation report of a rebuild: stored on the generation in the registry, published as
CloudWatch metrics, and rendered as Markdown for the people deciding on a promotion.

``EvaluationReport`` is plain JSON (``model_dump(mode="json")``) so the registry adapter and the
workflow can pass it around without custom encoders.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dynembed.core.config import METRICS
from dynembed.core.models import Generation, ScoreThreshold
from dynembed.quality.evaluation import (
    RETRIEVAL_METRICS,
    Comparison,
    EvaluationResult,
    GateDecision,
    GatePolicy,
    GoldenSet,
    MetricName,
    Outcome,
    metric_label,
)

_QUERY_TEXT_WIDTH = 80


class GenerationSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    generation_id: str
    model_id: str
    chunker_version: str | None = None
    retrieval: str = "vector"
    precision: str = "float32"

    @classmethod
    def of(cls, generation: Generation) -> GenerationSummary:
        return cls(
            generation_id=generation.id,
            model_id=generation.model.model_id,
            chunker_version=generation.chunker.version,
            retrieval=generation.retrieval.describe(),
            precision=generation.vectors.describe(),
        )


class MetricValues(BaseModel):
    model_config = ConfigDict(frozen=True)

    ndcg: float
    recall: float
    mrr: float

    @classmethod
    def of(cls, result: EvaluationResult) -> MetricValues:
        return cls(ndcg=result.ndcg, recall=result.recall, mrr=result.mrr)

    def get(self, metric: MetricName) -> float:
        return float(getattr(self, metric))


class Coverage(BaseModel):
    """How much of the source the candidate index holds when it is evaluated."""

    model_config = ConfigDict(frozen=True)

    docs_indexed: int = Field(ge=0)
    docs_in_source: int = Field(ge=0)

    @property
    def ratio(self) -> float:
        return self.docs_indexed / self.docs_in_source if self.docs_in_source else 1.0


class LatencyStats(BaseModel):
    """Per-query search latency in ms (query embedding + k-NN), from ``latency_summary``."""

    model_config = ConfigDict(frozen=True)

    p50: float
    p95: float
    mean: float
    samples: int | None = None


class IndexProfile(BaseModel):
    """What one generation costs to serve: memory from the engine's sizing formula
    (``index.sizing``), latency measured on the golden set."""

    model_config = ConfigDict(frozen=True)

    vectors: int = Field(ge=0)
    dimension: int = Field(ge=0)
    memory_per_vector_bytes: float = Field(ge=0)
    index_memory_bytes: float = Field(ge=0)
    """One copy: multiply by 1 + replicas."""
    disk_per_vector_bytes: float = Field(default=0.0, ge=0)
    latency_ms: LatencyStats | None = None


class EmbeddingUsage(BaseModel):
    """Embeddings the rebuild took from the cache versus computed afresh (invariant I4)."""

    model_config = ConfigDict(frozen=True)

    reused: int = Field(ge=0)
    computed: int = Field(ge=0)


class EstimateRow(BaseModel):
    """One figure of the rebuild's estimate beside what the rebuild really did."""

    model_config = ConfigDict(frozen=True)

    figure: str
    estimate: float
    actual: float

    @property
    def error(self) -> float | None:
        """(estimate - actual) / actual; None when the actual figure is 0."""
        return (self.estimate - self.actual) / self.actual if self.actual else None


class EstimateComparison(BaseModel):
    """The Estimate step's figures against the backfill's (``dynembed.cost.estimate``)."""

    model_config = ConfigDict(frozen=True)

    rows: list[EstimateRow]
    sampled_items: int = 0
    exact: bool = False
    token_counter: str = ""

    def row(self, figure: str) -> EstimateRow | None:
        return next((r for r in self.rows if r.figure == figure), None)

    def summary(self) -> dict[str, dict[str, float | None]]:
        return {r.figure: {"estimate": r.estimate, "actual": r.actual, "error": r.error} for r in self.rows}


class QueryRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    query_id: str
    text: str
    candidate_ndcg: float
    baseline_ndcg: float | None = None
    delta: float | None = None
    outcome: Outcome | None = None


class EvaluationReport(BaseModel):
    """Everything the gate decided on, in one JSON-serialisable record."""

    model_config = ConfigDict(frozen=True)

    report_version: int = 1
    created_at: float = Field(default_factory=time.time)
    golden_set: str
    k: int = Field(ge=1)
    queries_evaluated: int = Field(ge=0)
    queries_without_results: int = Field(default=0, ge=0)
    """Judged queries the candidate returned nothing for (scored 0): a broken index shows here."""
    queries_excluded: int = Field(default=0, ge=0)
    """Golden-set queries with no relevant doc, so not scored."""
    candidate: GenerationSummary
    baseline: GenerationSummary | None = None
    """The active generation compared against; None for the first generation."""
    candidate_metrics: MetricValues
    baseline_metrics: MetricValues | None = None
    deltas: MetricValues | None = None
    gate_passed: bool
    gate_reasons: list[str] = Field(default_factory=list)
    gate_notes: list[str] = Field(default_factory=list)
    policy: GatePolicy = Field(default_factory=GatePolicy)
    probes: dict[str, bool] = Field(default_factory=dict)
    coverage: Coverage | None = None
    latency_ms: LatencyStats | None = None
    embeddings: EmbeddingUsage | None = None
    candidate_index: IndexProfile | None = None
    baseline_index: IndexProfile | None = None
    threshold: ScoreThreshold | None = None
    """The candidate's calibrated score threshold (None: nothing to calibrate on)."""
    estimate: EstimateComparison | None = None
    wins: int = 0
    losses: int = 0
    ties: int = 0
    per_query: list[QueryRow] = Field(default_factory=list)
    """Worst nDCG delta first, so regressions are read before improvements."""
    shadow: dict[str, Any] | None = None
    """Candidate vs active on shadowed live traffic (``dynembed.quality.shadow.ShadowSummary``)."""

    @classmethod
    def build(
        cls,
        *,
        golden: GoldenSet,
        comparison: Comparison,
        decision: GateDecision,
        policy: GatePolicy,
        candidate: Generation | GenerationSummary,
        baseline: Generation | GenerationSummary | None = None,
        probes: Mapping[str, bool] | None = None,
        coverage: Coverage | None = None,
        latency_ms: Mapping[str, float] | LatencyStats | None = None,
        latency_samples: int | None = None,
        embeddings: EmbeddingUsage | None = None,
        shadow: Mapping[str, Any] | None = None,
        candidate_index: IndexProfile | None = None,
        baseline_index: IndexProfile | None = None,
        threshold: ScoreThreshold | None = None,
        estimate: EstimateComparison | None = None,
    ) -> EvaluationReport:
        """Assemble the report from the evaluation steps' outputs."""
        if isinstance(latency_ms, Mapping):
            latency_ms = LatencyStats(**latency_ms, samples=latency_samples)
        base = comparison.baseline
        return cls(
            golden_set=golden.name,
            k=comparison.k,
            queries_evaluated=len(comparison.candidate.per_query),
            queries_without_results=len(comparison.candidate.queries_without_results),
            queries_excluded=len(comparison.candidate.excluded_queries),
            candidate=_summary(candidate),
            baseline=_summary(baseline) if baseline is not None else None,
            candidate_metrics=MetricValues.of(comparison.candidate),
            baseline_metrics=MetricValues.of(base) if base is not None else None,
            deltas=MetricValues(**comparison.deltas) if comparison.deltas is not None else None,
            gate_passed=decision.passed,
            gate_reasons=list(decision.reasons),
            gate_notes=list(decision.notes),
            policy=policy,
            probes=dict(probes or {}),
            coverage=coverage,
            latency_ms=latency_ms,
            embeddings=embeddings,
            shadow=dict(shadow) if shadow is not None else None,
            candidate_index=candidate_index,
            baseline_index=baseline_index,
            threshold=threshold,
            estimate=estimate,
            wins=len(comparison.wins),
            losses=len(comparison.losses),
            ties=len(comparison.ties),
            per_query=[
                QueryRow(
                    query_id=row.query_id,
                    text=golden.queries[row.query_id],
                    candidate_ndcg=row.candidate,
                    baseline_ndcg=row.baseline,
                    delta=row.delta,
                    outcome=row.outcome,
                )
                for row in comparison.per_query
            ],
        )

    def cloudwatch_metrics(self) -> dict[str, float]:
        """Metric name -> value for the candidate (the ``generation`` dimension is the caller's).

        The configured names say ``At10``; a report at another k is published under ``At<k>``
        rather than mislabelled."""
        values = self.candidate_metrics
        names = {
            METRICS.eval_ndcg: values.ndcg,
            METRICS.eval_recall: values.recall,
            METRICS.eval_mrr: values.mrr,
        }
        return {name.replace("At10", f"At{self.k}"): value for name, value in names.items()}

    def to_markdown(self) -> str:
        return _render(self)


def render_markdown_report(report: Mapping[str, Any] | EvaluationReport) -> str:
    """Markdown for a report, e.g. as read back from the registry."""
    if not isinstance(report, EvaluationReport):
        report = EvaluationReport.model_validate(report)
    return report.to_markdown()


def _summary(generation: Generation | GenerationSummary) -> GenerationSummary:
    return generation if isinstance(generation, GenerationSummary) else GenerationSummary.of(generation)


# ---------------------------------------------------------------------------------- rendering


def _render(report: EvaluationReport) -> str:
    verdict = "PASSED" if report.gate_passed else "FAILED"
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.created_at))
    against = f" vs {report.baseline.generation_id}" if report.baseline else ""
    lines = [
        f"# Evaluation of {report.candidate.generation_id}{against}: gate {verdict}",
        "",
        f"Golden set `{report.golden_set}`: {report.queries_evaluated} judged queries"
        f" ({report.queries_without_results} without results, {report.queries_excluded} unjudged"
        f" left out), k={report.k}, {created}.",
        "",
        *_metrics_table(report),
        "",
        f"## Gate: {verdict}",
        "",
    ]
    if report.gate_reasons:
        lines += [f"- {reason}" for reason in report.gate_reasons]
    else:
        lines.append("- every check passed")
    lines += [f"- note: {note}" for note in report.gate_notes]
    policy = report.policy
    lines += [
        "",
        f"Policy: min nDCG {policy.min_ndcg:.3f}, min Recall {policy.min_recall:.3f}, "
        f"min MRR {policy.min_mrr:.3f}, max regression {policy.max_regression:.3f} "
        f"(and at most {policy.max_relative_regression:.0%} of the active value), "
        f"probes required: {'yes' if policy.require_probes else 'no'}.",
        "",
        "## Probes",
        "",
    ]
    if report.probes:
        lines += ["| probe | result |", "|---|---|"]
        lines += [
            f"| {_cell(name)} | {'pass' if ok else 'FAIL'} |" for name, ok in sorted(report.probes.items())
        ]
    else:
        lines.append("No probes were run.")
    lines += ["", "## Index", ""]
    lines += _index_lines(report)
    lines += ["", "## Shadow traffic", "", *_shadow_lines(report.shadow)]
    if report.estimate is not None:
        lines += ["", *_estimate_table(report.estimate)]
    lines += ["", *_per_query_table(report)]
    return "\n".join(lines) + "\n"


def _metrics_table(report: EvaluationReport) -> list[str]:
    cand, base = report.candidate, report.baseline
    rows: list[list[str]] = [
        ["", f"candidate `{_cell(cand.generation_id)}`"],
        ["model", f"`{cand.model_id}`"],
        ["chunker", f"`{cand.chunker_version or '-'}`"],
        ["retrieval", _cell(cand.retrieval)],
        ["precision", _cell(cand.precision)],
    ]
    if base is not None:
        rows[0] += [f"active `{_cell(base.generation_id)}`", "delta"]
        rows[1] += [f"`{base.model_id}`", ""]
        rows[2] += [f"`{base.chunker_version or '-'}`", ""]
        rows[3] += [_cell(base.retrieval), ""]
        rows[4] += [_cell(base.precision), ""]
    for metric in RETRIEVAL_METRICS:
        row = [metric_label(metric, report.k, display=True), f"{report.candidate_metrics.get(metric):.3f}"]
        if base is not None:
            before = report.baseline_metrics.get(metric) if report.baseline_metrics else None
            delta = report.deltas.get(metric) if report.deltas else None
            row += ["-" if before is None else f"{before:.3f}", "-" if delta is None else f"{delta:+.3f}"]
        rows.append(row)
    rows += _trade_off_rows(report)
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(rows[0]))
    return lines


def _trade_off_rows(report: EvaluationReport) -> list[list[str]]:
    """Memory and latency beside the quality rows (from the index profiles)."""
    cand, base = report.candidate_index, report.baseline_index
    if cand is None:
        return []
    with_base = report.baseline is not None
    figures: list[tuple[str, Any]] = [
        ("memory / vector", lambda p: f"{p.memory_per_vector_bytes:,.0f} B"),
        ("est. index memory", lambda p: f"{_bytes(p.index_memory_bytes)} ({p.vectors:,} vectors)"),
        (
            "search p50 / p95",
            lambda p: f"{p.latency_ms.p50:.1f} / {p.latency_ms.p95:.1f} ms" if p.latency_ms else "-",
        ),
    ]
    rows = []
    for label, show in figures:
        row = [label, show(cand)]
        if with_base:
            row += [show(base) if base is not None else "-", _ratio(label, cand, base)]
        rows.append(row)
    return rows


def _ratio(label: str, cand: IndexProfile, base: IndexProfile | None) -> str:
    if base is None or label != "memory / vector" or not base.memory_per_vector_bytes:
        return ""
    return f"x{cand.memory_per_vector_bytes / base.memory_per_vector_bytes:.2f}"


def _bytes(value: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f} B"


def _index_lines(report: EvaluationReport) -> list[str]:
    lines = []
    if report.coverage is not None:
        cov = report.coverage
        lines.append(
            f"- coverage: {cov.docs_indexed:,} of {cov.docs_in_source:,} source docs indexed"
            f" ({cov.ratio:.1%})"
        )
    if report.latency_ms is not None:
        lat = report.latency_ms
        samples = f" over {lat.samples} queries" if lat.samples else ""
        lines.append(
            f"- search latency{samples}: p50 {lat.p50:.1f} ms, p95 {lat.p95:.1f} ms, mean {lat.mean:.1f} ms"
        )
    if report.embeddings is not None:
        emb = report.embeddings
        total = emb.reused + emb.computed
        share = f" ({emb.reused / total:.1%} reused)" if total else ""
        lines.append(f"- embeddings: {emb.reused:,} reused, {emb.computed:,} computed{share}")
    if report.threshold is not None:
        t = report.threshold
        target = f" (target precision {t.target_precision:.2f})" if t.target_precision else ""
        lines.append(
            f"- score threshold {t.value:.4f} by {t.method}{target}: top hit relevant in {t.precision:.1%}"
            f" of the queries at or above it, recall {t.recall:.1%}, F1 {t.f1:.3f}"
            f" ({t.relevant_top1} of {t.queries} top hits relevant)"
        )
    elif report.candidate_index is not None:
        lines.append("- score threshold: not calibrated (no top hit was relevant)")
    if report.candidate_index is not None:
        lines.append(
            "- memory: 1.1 x (vector code bytes + 8 x m) per vector, one copy (x (1 + replicas) on a domain)"
        )
        if report.candidate_index.disk_per_vector_bytes:
            lines.append(
                f"- on disk (rescoring reads them): full-precision vectors,"
                f" {report.candidate_index.disk_per_vector_bytes:,.0f} B per vector"
            )
    return lines or ["No coverage, latency or embedding figures were recorded."]


def _shadow_lines(shadow: Mapping[str, Any] | None) -> list[str]:
    if not shadow or not shadow.get("queries"):
        return ["No live query was shadowed on the candidate."]
    lines = [
        f"{shadow['queries']} live queries answered by both; mean doc overlap@10 "
        f"{float(shadow.get('overlap@10') or 0.0):.3f}, rank-biased overlap (p={shadow.get('rbo_p', 0.9)}) "
        f"{float(shadow.get('rbo') or 0.0):.3f}.",
    ]
    disagreements = shadow.get("disagreements") or []
    if disagreements:
        lines += ["", "| query | overlap@10 | rbo |", "|---|---|---|"]
        lines += [
            f"| {_text(str(d.get('query', '')))} | {float(d.get('overlap', 0.0)):.3f} | {float(d.get('rbo', 0.0)):.3f} |"
            for d in disagreements
        ]
    return lines


def _estimate_table(estimate: EstimateComparison) -> list[str]:
    how = "the whole table" if estimate.exact else f"a sample of {estimate.sampled_items:,} items"
    lines = [
        "## Estimate vs actual",
        "",
        f"Estimated before the backfill from {how}; tokens counted with {estimate.token_counter or '-'}.",
        "",
        "| figure | estimate | actual | error |",
        "|---|---|---|---|",
    ]
    for row in estimate.rows:
        error = "-" if row.error is None else f"{row.error:+.1%}"
        lines.append(f"| {_cell(row.figure)} | {_number(row.estimate)} | {_number(row.actual)} | {error} |")
    return lines


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.4g}"


def _per_query_table(report: EvaluationReport) -> list[str]:
    label = metric_label("ndcg", report.k, display=True)
    if report.baseline is None:
        lines = [
            f"## Per-query {label} (no active generation)",
            "",
            "| query | text | candidate |",
            "|---|---|---|",
        ]
        lines += [f"| {r.query_id} | {_text(r.text)} | {r.candidate_ndcg:.3f} |" for r in report.per_query]
        return lines
    lines = [
        f"## Per-query {label}: {report.wins} wins, {report.losses} losses, {report.ties} ties",
        "",
        "| query | text | candidate | active | delta | outcome |",
        "|---|---|---|---|---|---|",
    ]
    for row in report.per_query:
        before = "-" if row.baseline_ndcg is None else f"{row.baseline_ndcg:.3f}"
        delta = "-" if row.delta is None else f"{row.delta:+.3f}"
        outcome = row.outcome.value if row.outcome else "-"
        lines.append(
            f"| {row.query_id} | {_text(row.text)} | {row.candidate_ndcg:.3f}"
            f" | {before} | {delta} | {outcome} |"
        )
    return lines


def _cell(value: str) -> str:
    """Table-safe: pipes escaped, line breaks flattened."""
    return " ".join(value.split()).replace("|", "\\|")


def _text(value: str) -> str:
    flat = " ".join(value.split())
    if len(flat) > _QUERY_TEXT_WIDTH:
        flat = flat[: _QUERY_TEXT_WIDTH - 1].rstrip() + "…"
    return _cell(flat)
