"""`dynembed cost`: a month of dynembed for a workload, from measured request counts and the
dated price table, beside the fixed costs and Amazon OpenSearch Ingestion for the same load."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dynembed_ops import paths
from dynembed_ops.cli.common import CommandSet, JsonFlag, console, emit, friendly

if TYPE_CHECKING:
    from dynembed.cost.model import Line

commands = CommandSet()
COUNTS = paths.REPO_ROOT / "bench" / "results" / "cost_counts.json"


@commands.command()
@friendly
def cost(
    docs: Annotated[int, typer.Option(help="Documents in the source table")],
    changes_per_day: Annotated[float, typer.Option(help="Source changes a day, all kinds")],
    mix: Annotated[
        str, typer.Option(help="Share of each kind, e.g. content=10,metadata=50,access=50,delete=0")
    ] = "content=1",
    model: Annotated[str, typer.Option(help="Catalog id of the embedding model")] = "bedrock-titan-v2-1024",
    rebuilds_per_month: Annotated[float, typer.Option(help="Full rebuilds a month")] = 0.0,
    osi_ocus: Annotated[float, typer.Option(help="OpenSearch Ingestion OCUs for the comparison")] = 2.0,
    counts: Annotated[
        Path,
        typer.Option(help="Counts from `dynembed bench cost` (committed: bench/results/cost_counts.json)"),
    ] = COUNTS,
    measure: Annotated[
        bool, typer.Option("--measure", help="Measure the counts now on a small local stack (~2 min)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Monthly cost of keeping DOCS documents in sync under CHANGES_PER_DAY changes."""
    from dynembed.cost.model import Workload, load_counts, monthly_cost, parse_mix
    from dynembed.cost.prices import load_prices

    if measure:
        from dynembed_ops.bench.cost_bench import CostBenchOptions, run_cost_bench

        with console.status("measuring request counts on a local stack"):
            measured = run_cost_bench(CostBenchOptions(docs=150, changes=30))
    else:
        measured = load_counts(counts)
    workload = Workload(
        docs=docs,
        changes_per_day=changes_per_day,
        mix=parse_mix(mix),
        model=model,
        rebuilds_per_month=rebuilds_per_month,
        osi_ocus=osi_ocus,
    )
    result = monthly_cost(workload, measured, load_prices())
    if emit(result.model_dump(mode="json"), as_json):
        return
    shares = ", ".join(f"{k} {v:.0%}" for k, v in workload.mix.items() if v)
    console.print(
        f"[bold]{docs:,} docs, {changes_per_day:,.0f} changes a day[/] ({shares}), model {model}: "
        f"{result.changes_per_month:,.0f} changes a month"
    )
    for title, lines in (("dynembed: per change", result.variable), ("fixed", result.fixed)):
        _table(title, lines)
    console.print(f"[bold]dynembed total: ${result.total_usd:,.2f} a month[/]")
    _table("Amazon OpenSearch Ingestion, same workload", result.osi)
    console.print(f"[bold]OpenSearch Ingestion total: ${result.osi_total_usd:,.2f} a month[/]")
    console.print(
        f"one full rebuild of {docs:,} docs: ${result.rebuild_once_usd:,.2f}; "
        f"tokens embedded a month: {result.embedding_tokens_per_month:,.0f} (dynembed) vs "
        f"{result.osi_embedding_tokens_per_month:,.0f} (whole docs re-embedded)"
    )
    console.print(
        f"[dim]counts measured {result.counts_measured_at} ({counts.name if not measure else 'just now'}); "
        f"unverified prices: {', '.join(result.unverified_prices) or 'none'} (docs/cost.md)[/]"
    )


def _table(title: str, lines: Sequence[Line]) -> None:
    table = Table(title=title)
    for column in ("item", "quantity", "unit", "USD / month"):
        table.add_column(column, justify="left" if column in ("item", "unit") else "right")
    for line in lines:
        table.add_row(line.item, f"{line.quantity:,.0f}", line.unit, f"{line.usd:,.2f}")
    console.print(table)
