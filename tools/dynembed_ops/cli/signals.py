"""`dynembed signals`: what sampled live queries say about a generation (weak-retrieval and
zero-result rates, latency, query drift, the least covered queries), the shadow comparison of a
rebuild's candidate, and `signals calibrate` for a generation that never went through a rebuild."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dynembed_ops.cli.common import CommandSet, JsonFlag, connect, console, emit, friendly

commands = CommandSet()


@commands.callback(invoke_without_command=True)
@friendly
def signals(
    ctx: typer.Context,
    generation: Annotated[str | None, typer.Option(help="Generation (default: the one serving)")] = None,
    minutes: Annotated[float | None, typer.Option(help="Only samples of the last N minutes")] = None,
    least: Annotated[int, typer.Option(help="Least covered queries to list")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Live-query signals of a generation, and the shadow comparison of a building candidate."""
    if ctx.invoked_subcommand is not None:
        return
    from dynembed.quality.shadow import shadow_summary
    from dynembed.quality.signals import summarize
    from dynembed.query.search import resolve_generation
    from dynembed.query.signals import shadow_candidate

    svc = connect()
    gen = resolve_generation(svc.registry, svc.index, svc.settings.index_alias, generation)
    since = time.time() - minutes * 60 if minutes else None
    summary = summarize(gen.id, svc.query_samples.samples(gen.id, since=since), since=since, least=least)
    candidate = shadow_candidate(svc.registry.list(), gen.id)
    shadow = shadow_summary(svc.query_samples, candidate.id).report() if candidate else None
    if emit({"signals": summary.model_dump(), "shadow": shadow}, as_json):
        return
    table = Table(title=f"live-query signals of {gen.id} ({summary.samples} samples)")
    table.add_column("signal")
    table.add_column("value")
    rate = summary.weak_retrieval_rate
    table.add_row(
        "weak retrieval",
        "n/a (generation not calibrated: `dynembed signals calibrate`)"
        if rate is None
        else f"{rate:.1%} of {summary.weak_samples} (best score < {summary.threshold:.3f})",
    )
    zero = summary.zero_result_rate
    table.add_row("zero results", "n/a" if zero is None else f"{zero:.1%}")
    if summary.latency_ms:
        table.add_row(
            "latency p50 / p95 (ms)", f"{summary.latency_ms['p50']:.1f} / {summary.latency_ms['p95']:.1f}"
        )
    drift = summary.query_drift
    table.add_row(
        "query drift (mean cos to nearest golden query)",
        "n/a (no golden embeddings)" if drift is None else f"{drift:.3f} over {summary.drift_samples}",
    )
    console.print(table)
    if summary.least_covered:
        least_table = Table(title="least covered live queries")
        for col in ("query", "nearest golden", "cos", "top score", "hits"):
            least_table.add_column(col)
        for row in summary.least_covered:
            least_table.add_row(
                row.query[:70],
                str(row.nearest_golden),
                f"{row.golden_similarity:.3f}",
                "-" if row.score is None else f"{row.score:.3f}",
                str(row.hits),
            )
        console.print(least_table)
    if shadow:
        console.print(
            f"shadow of candidate {shadow['generation_id']}: {shadow['queries']} queries, "
            f"overlap@10 {shadow['overlap@10'] or 0:.3f}, rbo {shadow['rbo'] or 0:.3f}"
        )


@commands.command()
@friendly
def calibrate(
    generation: str,
    queries: Annotated[Path, typer.Option(help="Golden set queries.jsonl")],
    qrels: Annotated[Path, typer.Option(help="Golden set qrels.tsv")],
    principal: Annotated[list[str] | None, typer.Option("--as", help="Principal the queries run as")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Calibrate a generation: its weak-retrieval threshold and golden query embeddings."""
    from dynembed.quality.evaluation import load_golden_set
    from dynembed.rebuild.calibrate import calibrate_generation

    svc = connect()
    golden = load_golden_set(queries, qrels)
    fields = calibrate_generation(svc, generation, golden, principal or [svc.schema.public_principal])
    if emit(fields, as_json):
        return
    threshold = fields.get("weak_threshold")
    keys = (fields.get("golden_queries") or {}).get("keys") or {}
    console.print(
        f"{generation}: threshold "
        + (
            "none (too few relevant top hits)"
            if threshold is None
            else f"{threshold['value']:.4f} ({threshold['queries']} queries)"
        )
        + f", {len(keys)} golden query embeddings cached"
    )
