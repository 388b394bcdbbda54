"""`dynembed canary | sentinel`: the scheduled monitors, run once now against the running
`dynembed up` stack (which also runs them on their schedules)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dynembed.core.config import TUNING
from dynembed_ops.cli.common import CommandSet, JsonFlag, connect, console, emit, friendly

commands = CommandSet()


@commands.command()
@friendly
def canary(
    generation: Annotated[
        str | None, typer.Option(help="Check this generation (default: the active one)")
    ] = None,
    queries: Annotated[
        Path | None, typer.Option(help="Golden-set queries, for a generation that recorded none at promotion")
    ] = None,
    qrels: Annotated[Path | None, typer.Option(help="Golden-set judgments (TSV), with --queries")] = None,
    settle: Annotated[
        float, typer.Option(help="Seconds a change may take before a probe counts it as missing")
    ] = TUNING.canary_settle_s,
    html: Annotated[Path | None, typer.Option("--html", help="Write the canary report as HTML here")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate the serving generation as its rebuild gate did; compare with its promotion figures."""
    from dynembed.quality.canary import canary_html_report, run_canary
    from dynembed.quality.html import render_canary_report
    from dynembed.rebuild.inputs import EvalSetInput

    if (queries is None) != (qrels is None):
        raise ValueError("--queries and --qrels go together")
    default = (
        EvalSetInput(queries=str(queries.resolve()), qrels=str(qrels.resolve()))
        if queries is not None and qrels is not None
        else None
    )
    svc = connect()
    record = run_canary(svc, generation_id=generation, default_eval_set=default, settle_s=settle)
    if html is not None:
        page = render_canary_report(canary_html_report(svc.registry.get(record["generation_id"])))
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(page, encoding="utf-8")
        record = {**record, "html": str(html.resolve())}
    if emit(record, as_json):
        return
    _print_canary(record)


def _print_canary(record: dict[str, Any]) -> None:
    k, reference = record["k"], record["reference"]
    table = Table(title=f"canary of {record['generation_id']}: {'passed' if record['passed'] else 'FAILED'}")
    for column in ("figure", f"at {reference['source']}", "now", "drop"):
        table.add_column(column, justify="right" if column != "figure" else "left")
    for metric, label in (("ndcg", "nDCG"), ("recall", "Recall"), ("mrr", "MRR")):
        table.add_row(
            f"{label}@{k}",
            f"{reference['metrics'][metric]:.3f}",
            f"{record['metrics'][metric]:.3f}",
            f"{record['drops'][metric]:+.3f}",
        )
    for name, ok in sorted(record["probes"].items()):
        table.add_row(f"probe {name}", "", "pass" if ok else "[red]FAIL[/]", "")
    table.add_row("query latency p95 (ms)", "", f"{record['latency_ms']['p95']:.0f}", "")
    console.print(table)
    for reason in record["reasons"]:
        console.print(f"[red]-[/] {reason}")
    if record.get("html"):
        console.print(f"report: {record['html']}")


@commands.command()
@friendly
def sentinel(
    wait: Annotated[float, typer.Option(help="Seconds to wait for each of the write and the delete")] = (
        TUNING.sentinel_wait_s
    ),
    as_json: JsonFlag = False,
) -> None:
    """Write the sentinel item, time it until searchable through the alias and its delete until gone."""
    from dynembed.quality.sentinel import run_sentinel, search_as_sentinel

    svc = connect()
    result = run_sentinel(
        svc.schema, svc.sentinel_writer, search_as_sentinel(svc), svc.telemetry, wait_s=wait
    )
    if emit(result.to_dict(), as_json):
        return

    def shown(seconds: float | None, timed_out: bool) -> str:
        if seconds is None:
            return "not measured"
        return f"[red]> {seconds:.1f} s (timed out)[/]" if timed_out else f"{seconds:.2f} s"

    console.print(f"write searchable after: {shown(result.freshness_s, result.freshness_timed_out)}")
    console.print(f"delete gone after:      {shown(result.delete_s, result.delete_timed_out)}")
    for note in result.notes:
        console.print(f"[yellow]-[/] {note}")
