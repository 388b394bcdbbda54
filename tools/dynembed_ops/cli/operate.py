"""Operator commands against the running local stack: status, audit, reprocess, dlq."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dynembed_ops.cli.common import CommandSet, JsonFlag, connect, console, emit, friendly

commands = CommandSet()
dlq_commands = CommandSet()


@commands.command()
@friendly
def status(as_json: JsonFlag = False) -> None:
    """Generations, queue depth, dead letters and parked stream records (with their reasons),
    held jobs, freshness, the canary and the sentinel, and which alarms would fire."""
    from dynembed.core.telemetry import percentile
    from dynembed_ops.ops import alarms, monitors_status, peek_dead_letters, peek_stream_failures, queue_depth

    svc = connect()
    jobs = queue_depth(svc.sqs, svc.settings.jobs_queue_url)
    # Depths before the peeks: a peeked message counts as in flight for a moment.
    dlq = queue_depth(svc.sqs, svc.settings.jobs_dlq_url)
    parked = queue_depth(svc.sqs, svc.settings.stream_failures_queue_url)
    letters = (
        [_brief(m) for m in peek_dead_letters(svc.sqs, svc.settings.jobs_dlq_url)] if dlq.visible else []
    )
    failures = (
        [_brief(m) for m in peek_stream_failures(svc.sqs, svc.settings.stream_failures_queue_url)]
        if parked.visible
        else []
    )
    audit = svc.audit(time_budget_s=30)
    lags = [g.freshness_lag_s for g in audit.generations]
    telemetry = _up_telemetry()
    freshness = telemetry.get("freshness_s", [])
    signals = _live_signals(svc)
    monitors = monitors_status(svc, telemetry)
    data = {
        "generations": [
            {"id": g.id, "status": g.status.value, "write_target": g.write_target, "model": g.model.model_id}
            for g in svc.registry.list()
        ],
        "alias_target": svc.index.alias_target(svc.settings.index_alias),
        "jobs_queue": asdict(jobs),
        "dlq": asdict(dlq),
        "dlq_reasons": letters,
        "stream_failures": asdict(parked),
        "stream_failure_reasons": failures,
        "held_jobs": svc.held.count(),
        "oldest_unindexed_change_s": max(lags, default=0.0),
        "audit": audit.totals(),
        "alarms": alarms(
            freshness,
            jobs,
            dlq,
            audit.totals(),
            stream_failures=parked,
            signals=signals,
            monitors=monitors["latest"],
        ),
        "live_signals": signals.model_dump(exclude={"least_covered"}) if signals else None,
        "canary": monitors["canary"],
        "sentinel": monitors["sentinel"],
        "freshness_p50_s": percentile(freshness, 50),
        "freshness_p95_s": percentile(freshness, 95),
        "counters": telemetry.get("counters", {}),
    }
    if emit(data, as_json):
        return
    table = Table(title="dynembed status")
    table.add_column("item")
    table.add_column("value")
    for g in data["generations"]:
        table.add_row(
            f"generation {g['id']}",
            f"{g['status']}{' (write target)' if g['write_target'] else ''} {g['model']}",
        )
    table.add_row("alias →", str(data["alias_target"]))
    table.add_row("jobs queued / in flight", f"{jobs.visible} / {jobs.in_flight}")
    table.add_row("dead letters (jobs DLQ)", str(dlq.visible + dlq.in_flight))
    _reason_rows(table, letters)
    table.add_row("parked stream records (stream failures)", str(parked.visible + parked.in_flight))
    _reason_rows(table, failures)
    table.add_row("held (batched) jobs", str(data["held_jobs"]))
    table.add_row("oldest unindexed change (s)", f"{data['oldest_unindexed_change_s']:.1f}")
    p50, p95 = data["freshness_p50_s"], data["freshness_p95_s"]
    table.add_row(
        "freshness p50 / p95 (s)", "n/a (nothing synced yet)" if p50 is None else f"{p50:.2f} / {p95:.2f}"
    )
    canary, sentinel = data["canary"], data["sentinel"]
    table.add_row(
        "canary nDCG / drop since promotion",
        "n/a (no run yet)"
        if canary is None
        else f"{canary['generation']}: {_num(canary.get('ndcg@' + str(canary['k'])))} / {_num(canary['ndcg_drop'])}",
    )
    table.add_row(
        "sentinel searchable / gone (s)", f"{_num(sentinel['freshness_s'])} / {_num(sentinel['delete_s'])}"
    )
    for alarm in data["alarms"]:
        table.add_row(
            f"alarm {alarm['alarm']}",
            ("[red]FIRING[/]" if alarm["firing"] else "ok")
            + (
                " (no data: missing data breaches)"
                if alarm.get("missing")
                else f" ({alarm['value']} > {alarm['threshold']}?)"
            ),
        )
    console.print(table)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


STATUS_REASONS = 5
"""Reasons shown per queue in the status table (`dynembed dlq` lists them all)."""


def _brief(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in ("body", "message_id")}


def _reason_rows(table: Table, messages: list[dict[str, Any]]) -> None:
    for message in messages[:STATUS_REASONS]:
        what = (
            f"doc {message['doc_id']}" if message.get("doc_id") else f"{message.get('records', '?')} records"
        )
        table.add_row(f"  {escape(what)}", escape(str(message["reason"])[:160]))
    if len(messages) > STATUS_REASONS:
        table.add_row("  ...", f"{len(messages) - STATUS_REASONS} more: dynembed dlq")


def _live_signals(svc: Any, window_s: float = 900.0) -> Any:
    """The serving generation's signals over the alarms' window (three 5-minute periods)."""
    import time

    from dynembed.core.errors import UnknownGenerationError
    from dynembed.quality.signals import signal_summary
    from dynembed.query.search import resolve_generation

    try:
        gen = resolve_generation(svc.registry, svc.index, svc.settings.index_alias, None)
    except UnknownGenerationError:
        return None
    return signal_summary(svc.query_samples, gen.id, since=time.time() - window_s)


def _up_telemetry() -> dict[str, Any]:
    """What the `dynembed up` process last wrote of its handlers' figures."""
    import json

    from dynembed_ops.local.stack import TELEMETRY_FILE_NAME, find_state_dir

    try:
        data: dict[str, Any] = json.loads((find_state_dir() / TELEMETRY_FILE_NAME).read_text())
        return data
    except (OSError, ValueError):
        return {}


@commands.command()
@friendly
def audit(
    repair: Annotated[
        bool, typer.Option(help="Enqueue reconcile jobs for stale/missing docs, delete strays")
    ] = False,
    sample: Annotated[float, typer.Option(help="Fraction of docs to check (0-1]")] = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Compare source, ledger and index: orphaned, stale and missing counts."""

    if not 0 < sample <= 1:
        raise ValueError("--sample must be in (0, 1]")
    svc = connect()
    report = svc.audit(queue=svc.queue, repair=repair, sample=sample)
    if emit(report.to_dict(), as_json):
        return
    table = Table(title=f"audit ({'complete' if report.complete else 'partial: time budget ran out'})")
    for col in (
        "generation",
        "source docs",
        "indexed docs",
        "chunks",
        "orphaned",
        "stale",
        "missing",
        "duplicates",
    ):
        table.add_column(col)
    for g in report.generations:
        table.add_row(
            g.generation,
            str(g.source_docs),
            str(g.indexed_docs),
            str(g.chunks),
            str(g.orphaned_vectors),
            str(g.stale_documents),
            str(g.missing_documents),
            str(g.duplicate_chunks),
        )
    console.print(table)
    if report.malformed_items:
        # Counted, hidden and never served; the audit carried on past them.
        console.print(f"malformed source items (not served): {report.malformed_items}")
        for example in report.malformed_examples:
            console.print(f"  {escape(example)}")
        if report.malformed_items > len(report.malformed_examples):
            console.print(f"  ... and {report.malformed_items - len(report.malformed_examples)} more")
    if repair:
        console.print(
            f"repairs enqueued: {report.repairs_enqueued}, stray chunks deleted: {report.orphans_deleted}"
        )


@commands.command()
@friendly
def reprocess(doc_id: str, as_json: JsonFlag = False) -> None:
    """Reconcile one doc again in every write target, rewriting every chunk."""
    from dynembed.core.errors import UnknownDocumentError
    from dynembed.core.models import ReconcileJob

    svc = connect()
    item = svc.source.get_item(doc_id)
    if item is None:
        raise UnknownDocumentError(
            f"no doc {doc_id!r} in the source table (chunks left in an index by a deleted doc are "
            "removed by `dynembed audit --repair`)"
        )
    version = svc.schema.version_of(item, doc_id)
    outcome = svc.reconciler().reconcile(
        [ReconcileJob(doc_id=doc_id, min_source_version=version, reason="reprocess", force=True)]
    )[0]
    if outcome.error is not None:
        raise outcome.error
    data = {
        "doc_id": doc_id,
        "generations": [p.generation.id for p in outcome.plans],
        "actions": [p.action for p in outcome.plans],
    }
    if not emit(data, as_json):
        console.print(f"reprocessed {doc_id} in {', '.join(data['generations'])}")


@dlq_commands.callback()
@friendly
def dlq(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="List at most this many of each", min=1)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List dead-lettered jobs and parked stream records, with their reasons (nothing consumed)."""
    if ctx.invoked_subcommand is not None:
        return
    from dynembed_ops.ops import peek_dead_letters, peek_stream_failures, queue_depth

    svc = connect()
    letters = peek_dead_letters(svc.sqs, svc.settings.jobs_dlq_url, limit=limit)
    failures = peek_stream_failures(svc.sqs, svc.settings.stream_failures_queue_url, limit=limit)
    # The queues' own counts: a listing stops at --limit, the title must not.
    jobs_total = max(len(letters), _held(queue_depth(svc.sqs, svc.settings.jobs_dlq_url)))
    failures_total = max(len(failures), _held(queue_depth(svc.sqs, svc.settings.stream_failures_queue_url)))
    if emit(
        {
            "jobs": letters,
            "stream_failures": failures,
            "jobs_total": jobs_total,
            "stream_failures_total": failures_total,
        },
        as_json,
    ):
        return
    table = Table(
        title=f"{_shown(len(letters), jobs_total)} dead-lettered jobs",
        caption="dynembed dlq redrive sends them back",
    )
    for col in ("doc", "attempts", "reason"):
        table.add_column(col)
    for letter in letters:
        table.add_row(escape(str(letter["doc_id"])), str(letter["attempts"]), escape(letter["reason"]))
    console.print(table)
    table = Table(
        title=f"{_shown(len(failures), failures_total)} parked stream records",
        caption="they cannot succeed as they are: fix the item in the source table and write it again",
    )
    for col in ("doc / records", "event", "reason"):
        table.add_column(col)
    for failure in failures:
        what = failure["doc_id"] or f"{failure.get('records')} records {failure.get('sequence_range')}"
        table.add_row(escape(str(what)), str(failure.get("event") or ""), escape(failure["reason"]))
    console.print(table)


def _held(depth: Any) -> int:
    return int(depth.visible) + int(depth.in_flight)


def _shown(listed: int, total: int) -> str:
    return str(total) if listed >= total else f"{listed} of {total}"


@dlq_commands.command("redrive")
@friendly
def dlq_redrive(as_json: JsonFlag = False) -> None:
    """Send dead-lettered jobs back to the jobs queue (as forced reconciles)."""
    from dynembed_ops.ops import redrive

    svc = connect()
    moved = redrive(svc.sqs, svc.settings.jobs_dlq_url, svc.settings.jobs_queue_url)
    if not emit({"redriven": moved}, as_json):
        console.print(f"sent {moved} jobs back to the queue")
