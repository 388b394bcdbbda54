"""Retrieval evaluation: golden sets, doc-level metrics, comparison and the promotion gate.

A rebuilt generation is promoted only if it is at least as good as the active one on a golden
set (queries.jsonl + qrels.tsv). Search returns chunks, but relevance is judged per document, so
a run ranks doc ids by their best chunk (the first time a doc appears in the chunk ranking).

Metric semantics follow trec_eval as exposed by ir-measures (``nDCG@k``, ``R@k``, ``RR@k``) and
are checked against it to 1e-9 in ``tests/unit/test_evaluation_irmeasures.py``:

- a doc is *relevant* when its relevance is >= 1; nDCG gains are the relevance grades themselves
  (linear, as trec_eval's ``ndcg_cut``), discount ``log2(rank + 1)``, ideal DCG from the qrels;
- Recall@k divides by every relevant doc of the query (not by ``min(k, relevant)``);
- MRR@k is the reciprocal rank of the first relevant doc within the top k, else 0;
- a judged query the run has no docs for scores 0 (ir-measures fills missing queries with 0);
- run queries that are not in the golden set are ignored.

One deliberate difference: a query whose qrels hold no relevant doc (only grade-0 judgments) is
*excluded* from the means, where ir-measures counts it as a 0. Its nDCG is undefined (ideal DCG
is 0) and counting it would only shrink every generation's score by the same factor, so the
excluded ids are reported instead. Queries with no qrels lines at all are excluded by both.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dynembed.core.errors import ConfigError
from dynembed.core.models import ScoreThreshold

logger = logging.getLogger(__name__)

MetricName = Literal["ndcg", "recall", "mrr"]
RETRIEVAL_METRICS: tuple[MetricName, ...] = ("ndcg", "recall", "mrr")
"""Every metric dynembed computes, in the order reports show them."""

_DISPLAY = {"ndcg": "nDCG", "recall": "Recall", "mrr": "MRR"}
_FLOAT_SLACK = 1e-12
"""Threshold comparisons allow this much float noise (0.5 - 0.48 is 0.020000000000000018)."""


def metric_label(metric: MetricName, k: int, *, display: bool = False) -> str:
    """``ndcg@10`` in gate reasons and logs, ``nDCG@10`` in reports."""
    return f"{_DISPLAY[metric] if display else metric}@{k}"


# --------------------------------------------------------------------------------- golden sets


@dataclass(frozen=True)
class GoldenSet:
    """Queries by id and graded judgments ``qrels[query_id][doc_id] = relevance`` (int >= 0)."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str = "golden"
    judged_query_ids: tuple[str, ...] = field(init=False)
    """Queries with at least one relevant doc, in query-file order: the ones that are scored."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.qrels) - set(self.queries))
        if unknown:
            raise ConfigError(f"golden set {self.name!r}: qrels name unknown queries {unknown[:5]}")
        for query_id, judgments in self.qrels.items():
            for doc_id, relevance in judgments.items():
                if not isinstance(relevance, int) or isinstance(relevance, bool) or relevance < 0:
                    raise ConfigError(
                        f"golden set {self.name!r}: relevance of {query_id}/{doc_id} must be an int >= 0,"
                        f" got {relevance!r}"
                    )
        judged = tuple(q for q in self.queries if any(r >= 1 for r in self.qrels.get(q, {}).values()))
        if not judged:
            raise ConfigError(f"golden set {self.name!r}: no query has a relevant document")
        object.__setattr__(self, "judged_query_ids", judged)

    @property
    def unjudged_query_ids(self) -> tuple[str, ...]:
        """Queries that are never scored: no qrels line, or only grade-0 judgments."""
        judged = set(self.judged_query_ids)
        return tuple(q for q in self.queries if q not in judged)


def load_golden_set(
    queries_path: str | Path, qrels_path: str | Path, *, name: str | None = None
) -> GoldenSet:
    """Read ``queries.jsonl`` and ``qrels.tsv``; any defect is a ConfigError naming file and line.

    Qrels naming a query that is not in the queries file are an error, not a warning: a gate
    silently scoring fewer queries than its authors wrote is worse than a failed rebuild.
    Queries without a relevant judgment are kept but not scored (logged as a warning).
    """
    queries_path, qrels_path = Path(queries_path), Path(qrels_path)
    queries = _read_queries(queries_path)
    qrels = _read_qrels(qrels_path, queries)
    golden = GoldenSet(queries=queries, qrels=qrels, name=name or queries_path.parent.name or "golden")
    if golden.unjudged_query_ids:
        logger.warning(
            "golden set %r: %d of %d queries have no relevant document and are not scored: %s",
            golden.name,
            len(golden.unjudged_query_ids),
            len(queries),
            list(golden.unjudged_query_ids[:10]),
        )
    return golden


def load_golden_set_dir(directory: str | Path) -> GoldenSet:
    """The layout ``Settings.eval_dir`` points at: ``<dir>/queries.jsonl`` and ``<dir>/qrels.tsv``."""
    directory = Path(directory)
    return load_golden_set(directory / "queries.jsonl", directory / "qrels.tsv", name=directory.name)


def _numbered_lines(path: Path) -> Iterable[tuple[int, str]]:
    """Non-blank lines with 1-based numbers; utf-8 with or without a BOM."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def _read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in _numbered_lines(path):
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ConfigError(
                f'{where}: expected an object {{"query_id", "text"}}, got {type(record).__name__}'
            )
        query_id, text = record.get("query_id"), record.get("text")
        if not isinstance(query_id, str) or not query_id.strip():
            raise ConfigError(f"{where}: query_id must be a non-empty string, got {query_id!r}")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}: text of query {query_id!r} must be a non-empty string")
        query_id = query_id.strip()
        if query_id in queries:
            raise ConfigError(
                f"{where}: duplicate query_id {query_id!r} (first on line {first_line[query_id]})"
            )
        queries[query_id] = text
        first_line[query_id] = number
    if not queries:
        raise ConfigError(f"{path}: no queries")
    return queries


def _read_qrels(path: Path, queries: Mapping[str, str]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for number, line in _numbered_lines(path):
        where = f"{path}:{number}"
        fields = line.split("\t")
        if len(fields) != 3:
            raise ConfigError(
                f"{where}: expected 3 tab-separated fields query_id, doc_id, relevance; got {len(fields)}"
            )
        query_id, doc_id, grade = (f.strip() for f in fields)
        if not query_id or not doc_id:
            raise ConfigError(f"{where}: empty query_id or doc_id")
        try:
            relevance = int(grade)
        except ValueError as exc:
            raise ConfigError(
                f"{where}: relevance must be an integer, got {grade!r} (qrels.tsv has no header line)"
            ) from exc
        if relevance < 0:
            raise ConfigError(f"{where}: relevance must be >= 0, got {relevance}")
        if query_id not in queries:
            raise ConfigError(f"{where}: query {query_id!r} is not in the queries file")
        if (query_id, doc_id) in first_line:
            raise ConfigError(
                f"{where}: duplicate judgment for {query_id}/{doc_id} "
                f"(first on line {first_line[query_id, doc_id]})"
            )
        first_line[query_id, doc_id] = number
        qrels.setdefault(query_id, {})[doc_id] = relevance
    if not qrels:
        raise ConfigError(f"{path}: no judgments")
    return qrels


# ------------------------------------------------------------------------------------ metrics


def rank_docs(doc_ids_by_chunk_rank: Iterable[str]) -> list[str]:
    """Doc ids ranked by their best chunk: chunk hits in rank order, first occurrence wins."""
    return list(dict.fromkeys(doc_ids_by_chunk_rank))


def ndcg_at_k(ranked_docs: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    """Graded nDCG@k (linear gain, log2 discount); 0 when the query has nothing relevant."""
    ideal = sorted((g for g in judgments.values() if g > 0), reverse=True)[:k]
    ideal_dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    if ideal_dcg == 0:
        return 0.0
    dcg = sum(judgments.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked_docs[:k]))
    return dcg / ideal_dcg


def recall_at_k(ranked_docs: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    relevant = {doc for doc, g in judgments.items() if g >= 1}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked_docs[:k])) / len(relevant)


def reciprocal_rank_at_k(ranked_docs: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    for rank, doc in enumerate(ranked_docs[:k], start=1):
        if judgments.get(doc, 0) >= 1:
            return 1.0 / rank
    return 0.0


class QueryMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    ndcg: float
    recall: float
    mrr: float


class EvaluationResult(BaseModel):
    """Means over every judged query of the golden set, and each query's scores."""

    model_config = ConfigDict(frozen=True)

    k: int
    ndcg: float
    recall: float
    mrr: float
    per_query: dict[str, QueryMetrics]
    """Every judged query (the denominator of the means), including those scored 0."""
    queries_without_results: list[str] = Field(default_factory=list)
    """Judged queries the run returned nothing for (scored 0)."""
    excluded_queries: list[str] = Field(default_factory=list)
    """Queries of the golden set with no relevant doc: not scored, not in the means."""

    def mean(self, metric: MetricName) -> float:
        return float(getattr(self, metric))

    def per_query_values(self, metric: MetricName) -> dict[str, float]:
        return {query_id: float(getattr(m, metric)) for query_id, m in self.per_query.items()}


def evaluate_run(run: Mapping[str, Sequence[str]], golden: GoldenSet, k: int = 10) -> EvaluationResult:
    """Score a doc-level run (``query_id -> doc ids in rank order``) against the golden set.

    Duplicate doc ids in a ranking are collapsed to their first (best) position, so a run built
    straight from chunk hits is scored as the doc ranking it implies.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    per_query: dict[str, QueryMetrics] = {}
    without_results: list[str] = []
    for query_id in golden.judged_query_ids:
        ranked = rank_docs(run.get(query_id, ()))
        if not ranked:
            without_results.append(query_id)
        judgments = golden.qrels[query_id]
        per_query[query_id] = QueryMetrics(
            ndcg=ndcg_at_k(ranked, judgments, k),
            recall=recall_at_k(ranked, judgments, k),
            mrr=reciprocal_rank_at_k(ranked, judgments, k),
        )
    count = len(per_query)
    return EvaluationResult(
        k=k,
        ndcg=math.fsum(m.ndcg for m in per_query.values()) / count,
        recall=math.fsum(m.recall for m in per_query.values()) / count,
        mrr=math.fsum(m.mrr for m in per_query.values()) / count,
        per_query=per_query,
        queries_without_results=without_results,
        excluded_queries=list(golden.unjudged_query_ids),
    )


DocSearch = Callable[[str], Sequence[str]]
"""Runs one query text; returns the doc id of each chunk hit, best first (repeats allowed)."""


def run_golden_set(
    golden: GoldenSet, search: DocSearch, query_ids: Sequence[str] | None = None
) -> tuple[dict[str, list[str]], list[float]]:
    """Run every judged query (or those of ``query_ids``) once; return the doc-level run and each
    query's latency in ms."""
    run: dict[str, list[str]] = {}
    latencies_ms: list[float] = []
    for query_id in golden.judged_query_ids if query_ids is None else query_ids:
        started = time.perf_counter()
        hits = search(golden.queries[query_id])
        latencies_ms.append((time.perf_counter() - started) * 1000.0)
        run[query_id] = rank_docs(hits)
    return run, latencies_ms


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p95 (numpy's linear interpolation between closest ranks) and mean, in ms."""
    samples = np.asarray(samples_ms, dtype=float)
    if samples.size == 0:
        raise ValueError("latency_summary needs at least one sample")
    if not np.all(np.isfinite(samples)) or np.any(samples < 0):
        raise ValueError("latency samples must be finite and >= 0")
    p50, p95 = np.percentile(samples, [50, 95])
    return {"p50": float(p50), "p95": float(p95), "mean": float(samples.mean())}


# --------------------------------------------------------------------------------- comparison


class Outcome(StrEnum):
    WIN = "win"
    LOSS = "loss"
    TIE = "tie"


class QueryComparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    query_id: str
    candidate: float
    baseline: float | None = None
    delta: float | None = None
    outcome: Outcome | None = None
    """None when there is no baseline to compare with."""


class Comparison(BaseModel):
    """Candidate against the active generation on the same golden set and k."""

    model_config = ConfigDict(frozen=True)

    k: int
    candidate: EvaluationResult
    baseline: EvaluationResult | None = None
    deltas: dict[MetricName, float] | None = None
    """candidate - baseline for each metric's mean; None without a baseline."""
    per_query: list[QueryComparison]
    """nDCG@k per query, worst delta first (then query id); candidate order without a baseline."""
    wins: list[str] = Field(default_factory=list)
    losses: list[str] = Field(default_factory=list)
    ties: list[str] = Field(default_factory=list)


def compare(
    candidate: EvaluationResult, baseline: EvaluationResult | None, *, tie_tolerance: float = 1e-9
) -> Comparison:
    """Mean deltas and per-query wins/losses/ties on nDCG@k (ties within ``tie_tolerance``)."""
    if baseline is None:
        rows = sorted(
            (QueryComparison(query_id=q, candidate=m.ndcg) for q, m in candidate.per_query.items()),
            key=lambda r: (r.candidate, r.query_id),
        )
        return Comparison(k=candidate.k, candidate=candidate, per_query=rows)
    if baseline.k != candidate.k:
        raise ValueError(f"cannot compare @{candidate.k} with @{baseline.k}")
    if set(baseline.per_query) != set(candidate.per_query):
        raise ValueError(
            "candidate and baseline were scored on different query sets (different golden sets?)"
        )
    rows = []
    outcomes: dict[Outcome, list[str]] = {o: [] for o in Outcome}
    for query_id, scores in candidate.per_query.items():
        before = baseline.per_query[query_id].ndcg
        delta = scores.ndcg - before
        outcome = Outcome.TIE if abs(delta) <= tie_tolerance else Outcome.WIN if delta > 0 else Outcome.LOSS
        outcomes[outcome].append(query_id)
        rows.append(
            QueryComparison(
                query_id=query_id, candidate=scores.ndcg, baseline=before, delta=delta, outcome=outcome
            )
        )
    rows.sort(key=lambda r: (r.delta or 0.0, r.query_id))
    return Comparison(
        k=candidate.k,
        candidate=candidate,
        baseline=baseline,
        deltas={m: candidate.mean(m) - baseline.mean(m) for m in RETRIEVAL_METRICS},
        per_query=rows,
        wins=outcomes[Outcome.WIN],
        losses=outcomes[Outcome.LOSS],
        ties=outcomes[Outcome.TIE],
    )


# -------------------------------------------------------------------------- score thresholds


class ThresholdPolicy(BaseModel):
    """How a generation's score threshold is calibrated on its golden set.

    ``f1`` (default): the threshold maximising F1 of the prediction "the top hit is relevant"
    (score >= threshold) over the judged queries. ``precision``: the lowest threshold whose
    precision reaches ``target_precision`` (keeps the most answers at that precision)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["f1", "precision"] = "f1"
    target_precision: float | None = Field(default=None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _target_fits_method(self) -> ThresholdPolicy:
        if self.method == "precision" and self.target_precision is None:
            raise ValueError("target_precision: required with method 'precision'")
        if self.method == "f1" and self.target_precision is not None:
            raise ValueError("target_precision: only with method 'precision'")
        return self


TopHit = tuple[float, bool]
"""A judged query's top hit: its score, and whether that doc is relevant (grade >= 1)."""


def top_hits(run: Mapping[str, Sequence[tuple[str, float]]], golden: GoldenSet) -> list[TopHit]:
    """(score, relevant) of the first hit of every judged query that has one."""
    hits = []
    for query_id in golden.judged_query_ids:
        ranked = run.get(query_id) or ()
        if ranked:
            doc_id, score = ranked[0]
            hits.append((float(score), golden.qrels[query_id].get(doc_id, 0) >= 1))
    return hits


def calibrate_threshold(hits: Sequence[TopHit], policy: ThresholdPolicy) -> ScoreThreshold | None:
    """The score below which a top hit is unlikely to be relevant (see ``ThresholdPolicy``).

    Candidate thresholds are the observed top scores; a threshold t keeps the queries whose top
    score is >= t. Precision = relevant kept / kept, recall = relevant kept / relevant top hits.
    Ties in F1 go to the higher threshold (fewer wrong answers at the same F1). None when no
    top hit is relevant, or the target precision is never reached: nothing to calibrate on."""
    relevant_total = sum(1 for _, relevant in hits if relevant)
    if not hits or relevant_total == 0:
        return None
    ordered = sorted(hits, key=lambda h: -h[0])
    best: tuple[float, float, float, float] | None = None  # (key, threshold, precision, recall)
    kept = relevant_kept = 0
    for position, (score, relevant) in enumerate(ordered):
        kept += 1
        relevant_kept += relevant
        if position + 1 < len(ordered) and ordered[position + 1][0] == score:
            continue  # a threshold keeps every hit with the same score
        precision, recall = relevant_kept / kept, relevant_kept / relevant_total
        if policy.method == "precision":
            if precision + _FLOAT_SLACK >= float(policy.target_precision or 1.0):
                best = (recall, score, precision, recall)  # lower thresholds come later
            continue
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if best is None or f1 > best[0] + _FLOAT_SLACK:
            best = (f1, score, precision, recall)
    if best is None:
        return None
    _, value, precision, recall = best
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ScoreThreshold(
        value=value,
        method=policy.method,
        target_precision=policy.target_precision,
        precision=precision,
        recall=recall,
        f1=f1,
        queries=len(hits),
        relevant_top1=relevant_total,
    )


# ------------------------------------------------------------------------------------- gate


class GatePolicy(BaseModel):
    """What a candidate must achieve to be promoted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_ndcg: float = Field(default=0.0, ge=0.0, le=1.0)
    min_recall: float = Field(default=0.0, ge=0.0, le=1.0)
    min_mrr: float = Field(default=0.0, ge=0.0, le=1.0)
    max_regression: float = Field(default=0.02, ge=0.0, le=1.0)
    """Largest allowed drop of each metric's mean against the active generation."""
    max_relative_regression: float = Field(default=0.10, ge=0.0, le=1.0)
    """Largest allowed drop as a share of the active generation's mean; the smaller of the two
    allowances applies, so a weak baseline (nDCG 0.09, where 0.02 would be a fifth of it) cannot
    be replaced by a candidate that is worse on every metric."""

    def allowed_drop(self, baseline: float) -> float:
        return min(self.max_regression, self.max_relative_regression * baseline)

    require_probes: bool = True
    """Every probe reported must have passed."""
    required_probes: tuple[str, ...] = ()
    """Probes that must be reported at all (a probe that never ran is a failure)."""
    min_shadow_overlap: float | None = Field(default=None, ge=0.0, le=1.0)
    """Lowest mean doc overlap@10 with the active generation on shadowed live traffic; None
    (the default) only reports the shadow figures."""
    min_shadow_queries: int = Field(default=20, ge=1)
    """Shadow comparisons needed before ``min_shadow_overlap`` can pass (too few is a failure)."""

    def minimum(self, metric: MetricName) -> float:
        return float(getattr(self, f"min_{metric}"))


class GateDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    reasons: list[str] = Field(default_factory=list)
    """One line per failed check, with the numbers."""
    notes: list[str] = Field(default_factory=list)
    """Checks that could not run (e.g. no active generation to regress against)."""


class ShadowEvidence(Protocol):
    """What the gate reads of the shadow comparison (``dynembed.quality.shadow.ShadowSummary``)."""

    queries: int
    overlap_at_10: float | None


def gate(
    comparison: Comparison,
    probes: Mapping[str, bool],
    policy: GatePolicy,
    *,
    shadow: ShadowEvidence | None = None,
) -> GateDecision:
    """Check absolute minimums, regression against the active generation, probes, and (when the
    policy asks) the overlap with the active generation on shadowed live traffic."""
    k = comparison.k
    reasons: list[str] = []
    notes: list[str] = []
    for metric in RETRIEVAL_METRICS:
        value, minimum = comparison.candidate.mean(metric), policy.minimum(metric)
        if value < minimum - _FLOAT_SLACK:
            shown_value, shown_min = _distinct(value, minimum)
            reasons.append(f"{metric_label(metric, k)} {shown_value} < min {shown_min}")
    if comparison.deltas is None:
        notes.append("no active generation: regression checks skipped")
    else:
        for metric in RETRIEVAL_METRICS:
            drop = -comparison.deltas[metric]
            baseline = comparison.candidate.mean(metric) + drop
            allowed = policy.allowed_drop(baseline)
            if drop > allowed + _FLOAT_SLACK:
                shown_drop, shown_max = _distinct(drop, allowed)
                relative = (
                    f" ({policy.max_relative_regression:.0%} of its {baseline:.3f})"
                    if allowed < policy.max_regression
                    else ""
                )
                reasons.append(
                    f"{metric_label(metric, k)} dropped {shown_drop} > {shown_max} vs active{relative}"
                )
    if all(comparison.candidate.mean(metric) == 0 for metric in RETRIEVAL_METRICS):
        # Nothing to compare: a promotion on this evidence would be blind.
        reasons.append(
            "no query found a relevant doc: check the golden set's doc ids and that the eval principal may read them"
        )
    for name in policy.required_probes:
        if name not in probes:
            reasons.append(f"probe {name} missing")
    if policy.require_probes:
        reasons.extend(f"probe {name} failed" for name, ok in probes.items() if not ok)
    if policy.min_shadow_overlap is not None:
        reasons.extend(_shadow_reasons(policy, policy.min_shadow_overlap, shadow))
    return GateDecision(passed=not reasons, reasons=reasons, notes=notes)


def _shadow_reasons(policy: GatePolicy, minimum: float, shadow: ShadowEvidence | None) -> list[str]:
    queries = shadow.queries if shadow is not None else 0
    if queries < policy.min_shadow_queries or shadow is None or shadow.overlap_at_10 is None:
        return [
            f"shadow: {queries} live queries compared, {policy.min_shadow_queries} needed for min_shadow_overlap"
        ]
    if shadow.overlap_at_10 < minimum - _FLOAT_SLACK:
        shown, limit = _distinct(shadow.overlap_at_10, minimum)
        return [f"shadow overlap@10 {shown} < min {limit} on {queries} live queries"]
    return []


def _distinct(value: float, limit: float) -> tuple[str, str]:
    """Three decimals, or more when three would print a failing value equal to its limit."""
    for digits in range(3, 10):
        shown = f"{value:.{digits}f}", f"{limit:.{digits}f}"
        if shown[0] != shown[1]:
            return shown
    return f"{value!r}", f"{limit!r}"
