"""The canary: the serving generation evaluated again, on a schedule, exactly as the rebuild
gate evaluated it (``dynembed.quality.measure``: same golden set, principal, k and probes), and
compared with its own figures at promotion. A generation that got worse since (drifted data,
a broken embedder, lost chunks) shows as a *drop*; the alarms watch the drops, which have a
static threshold whatever the generation's level.

Which figures it compares with, in order:

1. the generation's evaluation report, when the gate passed it and the report records its golden
   set (``eval_set``, ``eval_principal``, ``k``: every rebuild since the canary exists);
2. the reference an earlier canary run stored on the generation;
3. none yet (a bootstrapped generation, or one promoted before reports recorded their golden
   set): the golden set comes from ``default_eval_set`` or DYNEMBED_EVAL_DIR, and this run's
   figures become the reference later runs are compared with.

The report is stored on the generation (``Generation.canary``, the run before it kept as
``previous``), and its figures go out through ``Telemetry`` (EMF in Lambda): by ``generation``,
and the drops and probe failures also under ``service`` alone for the alarms (only when the
generation is the active one). Its ``generation_id``/``k``/``queries``/``metrics`` keys are the ``canary`` section of
``dynembed.quality.html``.

Live traffic rides along: the generation's sampled live queries since the previous canary run
(``dynembed.quality.signals``; the last canary interval on a first run) give the report its
``weak_retrieval_rate`` (share below the generation's calibrated threshold), the other live
figures under ``live``, and ``least_covered_queries``, the live queries farthest from every
golden query, so the golden set can grow where traffic went. No samples: those are None/empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from dynembed.core.config import METRICS, THRESHOLDS, TUNING, AlarmThresholds
from dynembed.core.errors import DynembedError
from dynembed.core.models import Generation, GenerationStatus
from dynembed.core.observability import logger
from dynembed.core.ports import MetricUnitName
from dynembed.core.telemetry import Telemetry
from dynembed.quality.evaluation import RETRIEVAL_METRICS, GoldenSet, latency_summary, metric_label
from dynembed.quality.measure import chunks_for, measure, run_probes, snapshot
from dynembed.quality.signals import summarize
from dynembed.rebuild import generations
from dynembed.rebuild.evaluate import eval_set_of, load_eval_set_from
from dynembed.rebuild.inputs import GENERATION_ID_PATTERN, EvalSetInput

if TYPE_CHECKING:
    from dynembed.wiring import Services


class CanaryRequest(BaseModel):
    """The canary function's input: an EventBridge scheduled event (its fields are ignored), or
    ``{"generation_id": ...}`` from a person who wants another generation checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    generation_id: str | None = Field(default=None, pattern=GENERATION_ID_PATTERN)


REPORT_VERSION = 1
LATENCY_PROBE = "latency_p95_within_limit"
REGRESSED_QUERIES_KEPT = 10
PROMOTION = "promotion"
FIRST_CANARY = "first canary"
_SLACK = 1e-12


def run_canary(
    svc: Services,
    *,
    generation_id: str | None = None,
    default_eval_set: EvalSetInput | None = None,
    settle_s: float = TUNING.canary_settle_s,
    thresholds: AlarmThresholds = THRESHOLDS,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Evaluate ``generation_id`` (default: the active generation); store, publish and return
    the canary report."""
    gen = _generation(svc, generation_id)
    reference = _reference(gen, svc, default_eval_set)
    eval_set = EvalSetInput.model_validate(reference["eval_set"])
    golden = load_eval_set_from(eval_set, svc.settings, svc.blobs)
    k, principal = int(reference["k"]), list(reference["principal"])

    measured = measure(svc, gen, golden, principal, k)
    seen = snapshot(svc, gen)
    probes, details = run_probes(
        svc, gen, golden, seen, chunks_for(k), settle_s=settle_s, sleep=sleep, clock=clock
    )
    latency = latency_summary(measured.latencies_ms)
    probes[LATENCY_PROBE] = latency["p95"] <= thresholds.canary_latency_p95_ms
    details[LATENCY_PROBE] = {
        "p95_ms": round(latency["p95"], 2),
        "limit_ms": thresholds.canary_latency_p95_ms,
    }

    result = measured.result
    metrics = {m: result.mean(m) for m in RETRIEVAL_METRICS}
    if reference.get("metrics") is None:
        reference = {**reference, "metrics": metrics, "at": clock()}
    drops = {m: float(reference["metrics"][m]) - metrics[m] for m in RETRIEVAL_METRICS}
    reasons = [
        f"{metric_label(m, k)} {metrics[m]:.3f} is {drops[m]:.3f} below its {reference['source']} "
        f"figure {reference['metrics'][m]:.3f} (margin {thresholds.canary_max_drop:.3f})"
        for m in RETRIEVAL_METRICS
        if drops[m] > thresholds.canary_max_drop + _SLACK
    ]
    reasons += [f"probe {name} failed" for name, ok in probes.items() if not ok]
    record: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "created_at": clock(),
        "generation_id": gen.id,
        "model_id": gen.model.model_id,
        "status": gen.status.value,
        "golden_set": golden.name,
        "k": k,
        "queries": len(result.per_query),
        "queries_without_results": len(result.queries_without_results),
        "metrics": metrics,
        "reference": reference,
        "drops": drops,
        "max_drop": thresholds.canary_max_drop,
        "passed": not reasons,
        "reasons": reasons,
        "probes": probes,
        "probe_details": details,
        "probe_failures": sum(1 for ok in probes.values() if not ok),
        "latency_ms": {**latency, "samples": len(measured.latencies_ms)},
        "regressed_queries": _regressed(gen, golden, result.per_query_values("ndcg"), reference),
        **_live_signals(svc, gen, clock()),
    }
    if gen.canary:
        record["previous"] = {
            key: gen.canary.get(key) for key in ("created_at", "metrics", "drops", "passed", "reasons")
        }
    publish(svc.telemetry, record, for_alarms=gen.status is GenerationStatus.ACTIVE)
    svc.registry.update(gen.id, canary=record)
    logger.info(
        "canary",
        generation=gen.id,
        passed=record["passed"],
        reference=reference["source"],
        drops={m: round(d, 4) for m, d in drops.items()},
        reasons=reasons,
    )
    return record


LEAST_COVERED_LISTED = 10


def _live_signals(svc: Services, gen: Generation, now: float) -> dict[str, Any]:
    """The generation's sampled live queries since the previous canary run."""
    since = float((gen.canary or {}).get("created_at") or now - 60 * TUNING.canary_rate_minutes)
    store = svc.query_samples
    samples = store.samples(gen.id, since=since) if store is not None else []
    live = summarize(gen.id, samples, since=since, least=LEAST_COVERED_LISTED)
    return {
        "weak_retrieval_rate": live.weak_retrieval_rate,
        "live": live.model_dump(exclude={"least_covered", "generation"}),
        "least_covered_queries": [row.model_dump() for row in live.least_covered],
    }


def _generation(svc: Services, generation_id: str | None) -> Generation:
    if generation_id:
        gen: Generation = svc.registry.get(generation_id)
        return gen
    active = generations.find_active(svc.registry)
    if active is None:
        raise DynembedError("canary: no generation is active: nothing serves, nothing to evaluate")
    return active


def _reference(gen: Generation, svc: Services, default_eval_set: EvalSetInput | None) -> dict[str, Any]:
    """What to compare with, and the golden set, principal and k that make it comparable."""
    report = gen.report or {}
    if report.get("gate_passed") and report.get("candidate_metrics") and report.get("eval_set"):
        return {
            "source": PROMOTION,
            "at": report.get("created_at"),
            "metrics": dict(report["candidate_metrics"]),
            "eval_set": dict(report["eval_set"]),
            "principal": list(report.get("eval_principal") or [svc.schema.public_principal]),
            "k": int(report.get("k") or 10),
        }
    stored = (gen.canary or {}).get("reference")
    if stored and stored.get("metrics") is not None:
        return dict(stored)
    return {
        "source": FIRST_CANARY,
        "at": None,
        "metrics": None,
        "eval_set": eval_set_of(default_eval_set, svc.settings).model_dump(),
        "principal": [svc.schema.public_principal],
        "k": 10,
    }


def _regressed(
    gen: Generation, golden: GoldenSet, now: Mapping[str, float], reference: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The queries that lost most nDCG since promotion (from the report's per-query rows)."""
    if reference["source"] != PROMOTION:
        return []
    before = {
        row["query_id"]: float(row["candidate_ndcg"])
        for row in (gen.report or {}).get("per_query") or []
        if isinstance(row, Mapping) and "query_id" in row and "candidate_ndcg" in row
    }
    rows = [
        {
            "query_id": q,
            "text": golden.queries.get(q, ""),
            "at_promotion": before[q],
            "now": value,
            "delta": value - before[q],
        }
        for q, value in now.items()
        if q in before and value < before[q] - _SLACK
    ]
    rows.sort(key=lambda r: (r["delta"], r["query_id"]))
    return rows[:REGRESSED_QUERIES_KEPT]


def publish(telemetry: Telemetry, record: Mapping[str, Any], *, for_alarms: bool) -> None:
    """The report's figures by generation, plus (``for_alarms``) the drops and probe failures
    under the service dimension alone, which is what the alarms watch."""
    by_generation = {"generation": str(record["generation_id"])}
    names = {"ndcg": METRICS.canary_ndcg, "recall": METRICS.canary_recall, "mrr": METRICS.canary_mrr}
    drop_names = {
        "ndcg": METRICS.canary_ndcg_drop,
        "recall": METRICS.canary_recall_drop,
        "mrr": METRICS.canary_mrr_drop,
    }
    figures: list[tuple[str, float, MetricUnitName]] = [
        (names[m], float(v), "None") for m, v in record["metrics"].items()
    ]
    alarmed: list[tuple[str, float, MetricUnitName]] = [
        (drop_names[m], float(v), "None") for m, v in record["drops"].items()
    ]
    alarmed.append((METRICS.canary_probe_failures, float(record["probe_failures"]), "Count"))
    figures += alarmed
    figures.append((METRICS.canary_latency_p95, float(record["latency_ms"]["p95"]), "Milliseconds"))
    for name, value, unit in figures:
        telemetry.gauge(name, value, unit, by_generation)
    if for_alarms:
        for name, value, unit in alarmed:
            telemetry.gauge(name, value, unit)


def canary_html_report(gen: Generation, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The dict ``dynembed.quality.html.render_canary_report`` takes for ``gen``'s latest canary:
    its promotion figures as the candidate series beside the canary's, plus ``extra`` sections
    (``freshness`` with the sentinel's figures, ``shadow``)."""
    canary = gen.canary
    if not canary:
        raise DynembedError(f"generation {gen.id} has no canary report yet: run `dynembed canary` first")
    report: dict[str, Any] = {
        "candidate": {
            "generation_id": gen.id,
            "model_id": gen.model.model_id,
            "chunker_version": gen.chunker.version,
        },
        "golden_set": canary.get("golden_set"),
        "k": canary.get("k"),
        "created_at": canary.get("created_at"),
        "canary": canary,
        "probes": canary.get("probes"),
        "probe_details": canary.get("probe_details"),
        "latency_ms": canary.get("latency_ms"),
    }
    reference = canary.get("reference") or {}
    if reference.get("source") == PROMOTION:
        report["candidate_metrics"] = reference.get("metrics")
    report.update(extra or {})
    return report


def summary(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The few figures `dynembed status` and the demo show."""
    if not record:
        return None
    k = record.get("k", 10)
    metrics: Mapping[str, float] = record.get("metrics") or {}
    drops: Mapping[str, float] = record.get("drops") or {}
    out: dict[str, Any] = {f"{m}@{k}": metrics.get(m) for m in RETRIEVAL_METRICS}
    out.update({f"{m}_drop": drops.get(m) for m in RETRIEVAL_METRICS})
    out.update(
        generation=record.get("generation_id"),
        k=k,
        at=record.get("created_at"),
        reference=(record.get("reference") or {}).get("source"),
        passed=record.get("passed"),
        probe_failures=record.get("probe_failures"),
        weak_retrieval_rate=record.get("weak_retrieval_rate"),
    )
    return out
