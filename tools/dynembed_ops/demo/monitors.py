"""`dynembed demo`, the monitors: once the rebuild has decided, the canary evaluates the serving
generation as its gate did and compares with its promotion figures, the end-to-end sentinel
times a write and a delete through the running pumps, the alarm evaluator says which of their
alarms would fire, and the rebuild report is written as one HTML page with the canary and the
freshness (sentinel included) in it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.table import Table

from dynembed.core.config import THRESHOLDS
from dynembed.core.telemetry import percentile
from dynembed.quality.canary import run_canary
from dynembed.quality.html import render_report
from dynembed.quality.sentinel import SentinelResult, run_sentinel, search_as_sentinel
from dynembed.rebuild.generations import find_active
from dynembed.rebuild.inputs import EvalSetInput
from dynembed_ops.demo.state import DemoState
from dynembed_ops.ops import monitor_alarms, monitor_values

SENTINEL_WAIT_S = 30.0
SENTINEL_POLL_S = 0.1
REPORT_NAME = "dynembed-demo-report.html"
NO_SHADOW = {"queries": None, "overlap@10": None, "rbo": None}
"""The summary's shadow figures when no live query was shadowed on the candidate."""


def run_monitors(state: DemoState) -> None:
    svc = state.stack.services()
    active = find_active(svc.registry)
    assert active is not None, "the demo always has a serving generation"
    options = state.options
    golden = EvalSetInput(queries=str(options.queries.resolve()), qrels=str(options.qrels.resolve()))
    state.console.rule(f"[bold]Monitors: canary of {active.id}, end-to-end sentinel")
    with state.console.status(f"Canary of {active.id} on {len(state.golden.judged_query_ids)} queries"):
        started = time.monotonic()
        canary = run_canary(svc, default_eval_set=golden)
    state.console.print(f"Canary [dim]({time.monotonic() - started:.1f} s)[/]")
    _print_canary(state, canary)
    with state.stack.background(interval_s=0.05), state.console.status("Sentinel: write, search, delete"):
        sentinel = run_sentinel(
            svc.schema,
            svc.sentinel_writer,
            search_as_sentinel(svc),
            svc.telemetry,
            wait_s=SENTINEL_WAIT_S,
            poll_s=SENTINEL_POLL_S,
        )
    state.console.print(
        f"Sentinel: searchable through the alias after {_seconds(sentinel.freshness_s, sentinel.freshness_timed_out)}, "
        f"its delete gone after {_seconds(sentinel.delete_s, sentinel.delete_timed_out)}"
    )
    for note in sentinel.notes:
        state.console.print(f"  [yellow]{note}[/]")
    latest = monitor_values(svc.telemetry.snapshot(), svc.registry.get(canary["generation_id"]).canary)
    firing = [a["alarm"] for a in monitor_alarms(latest) if a["firing"]]
    state.console.print(
        "Monitor alarms firing: "
        + (", ".join(f"[red]{a}[/]" for a in firing) if firing else "[green]none[/]")
    )
    k = canary["k"]
    summary = state.summary
    summary["canary"] = {
        "generation": canary["generation_id"],
        **{f"{m}@{k}": canary["metrics"][m] for m in ("ndcg", "recall", "mrr")},
        "ndcg_drop": canary["drops"]["ndcg"],
        "passed": canary["passed"],
        "weak_retrieval_rate": canary.get("weak_retrieval_rate"),
    }
    summary["sentinel"] = {
        "freshness_s": sentinel.freshness_s,
        "delete_s": sentinel.delete_s,
        "ok": sentinel.ok,
    }
    rebuilt = summary.get("rebuild_generation")
    shadow = (svc.registry.get(rebuilt).report or {}).get("shadow") if rebuilt else None
    summary["shadow"] = {key: (shadow or {}).get(key) for key in NO_SHADOW}
    summary["monitor_alarms_firing"] = firing
    summary["report_html"] = str(_write_report(state, canary, sentinel))
    state.console.print(f"HTML report: {summary['report_html']}")


def _print_canary(state: DemoState, canary: dict[str, Any]) -> None:
    reference, k = canary["reference"], canary["k"]
    table = Table(title=f"Canary of {canary['generation_id']} vs its figures at {reference['source']}")
    for column in ("metric", f"at {reference['source']}", "canary", "drop"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric, label in (("ndcg", "nDCG"), ("recall", "Recall"), ("mrr", "MRR")):
        table.add_row(
            f"{label}@{k}",
            f"{reference['metrics'][metric]:.3f}",
            f"{canary['metrics'][metric]:.3f}",
            f"{canary['drops'][metric]:+.3f}",
        )
    failed = [name for name, ok in canary["probes"].items() if not ok]
    table.add_row("probes", "", "all pass" if not failed else f"[red]{', '.join(failed)}[/]", "")
    table.add_row("query latency p95 (ms)", "", f"{canary['latency_ms']['p95']:.0f}", "")
    state.console.print(table)
    verdict = (
        "[green]no drop beyond the margin[/]"
        if canary["passed"]
        else "[red]" + "; ".join(canary["reasons"]) + "[/]"
    )
    state.console.print(f"  margin {THRESHOLDS.canary_max_drop:.2f}: {verdict}")


def _write_report(state: DemoState, canary: dict[str, Any], sentinel: SentinelResult) -> Path:
    svc = state.stack.services()
    rebuilt = state.summary.get("rebuild_generation")
    generation = svc.registry.get(rebuilt or canary["generation_id"])
    lags = state.telemetry.freshness_s[state.summary.get("freshness_from", 0) :]
    freshness: dict[str, Any] = {
        "p50": percentile(lags, 50),
        "p95": percentile(lags, 95),
        "max": max(lags, default=None),
        "samples": len(lags),
        "target_p95_s": THRESHOLDS.freshness_p95_s,
        "sentinel_freshness_s": None if sentinel.freshness_timed_out else sentinel.freshness_s,
        "sentinel_delete_s": None if sentinel.delete_timed_out else sentinel.delete_s,
    }
    # The rebuild report carries its own shadow section when live queries were shadowed.
    report: dict[str, Any] = {**(generation.report or {}), "canary": canary, "freshness": freshness}
    title = f"Rebuild {generation.id}" if rebuilt else f"Generation {generation.id}"
    folder = state.options.json_out.parent if state.options.json_out else Path("out")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REPORT_NAME
    path.write_text(render_report(report, title=title), encoding="utf-8")
    return path.resolve()


def _seconds(value: float | None, timed_out: bool) -> str:
    if value is None:
        return "not measured"
    return f"[red]> {value:.1f} s (timed out)[/]" if timed_out else f"{value:.2f} s"
