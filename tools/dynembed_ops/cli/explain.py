"""`dynembed explain DOC_ID`: why a result may look wrong. Per generation that still has an
index: the doc's chunks against the source, the ledger, and one verdict (current, stale content,
stale metadata or access, old chunker, old model, missing, orphaned); then the doc's recent
decisions with their lag, as the running `dynembed up` recorded them."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from dynembed_ops.cli.common import CommandSet, JsonFlag, connect, console, emit, friendly

commands = CommandSet()

VERDICT_STYLE = {"current": "green", "missing": "red", "orphaned": "red", "old model": "red"}


def recent_from_up(doc_id: str) -> list[dict[str, Any]] | None:
    """The doc's recent decisions from the telemetry file `dynembed up` writes (None: no file)."""
    import json

    from dynembed.core.errors import DynembedError
    from dynembed_ops.local.stack import TELEMETRY_FILE_NAME, find_state_dir

    try:
        recent = json.loads((find_state_dir() / TELEMETRY_FILE_NAME).read_text()).get("recent")
    except (OSError, ValueError, DynembedError):
        return None
    if not isinstance(recent, dict):
        return None
    events = recent.get(doc_id)
    return list(events) if isinstance(events, list) else []


def explain_doc(svc: Any, doc_id: str) -> Any:
    return svc.explain(doc_id, recent=recent_from_up)


@commands.command()
@friendly
def explain(
    doc_id: str,
    as_json: JsonFlag = False,
) -> None:
    """Explain one doc: per generation, its chunks against the source, and a verdict."""
    svc = connect()
    explanation = explain_doc(svc, doc_id)
    if emit(explanation.to_dict(), as_json):
        return
    print_explanation(explanation)


def print_explanation(explanation: Any, *, served_by: str | None = None) -> None:
    src = explanation.source
    if src.get("exists"):
        state = "live" if src.get("live") else "tombstoned"
        console.print(
            f"[bold]{explanation.doc_id}[/]: source version {src.get('version')} ({state}), "
            f"acl {src.get('acl')}, tenant {src.get('tenant')!r}, metadata {src.get('metadata')}"
        )
    else:
        console.print(f"[bold]{explanation.doc_id}[/]: not in the source")
    table = Table(title=f"{explanation.doc_id} by generation")
    for col in ("generation", "role", "verdict", "chunks", "versions", "ledger", "why"):
        table.add_column(col)
    for view in explanation.generations:
        style = VERDICT_STYLE.get(view.verdict, "yellow")
        ledger = view.ledger
        ledger_text = f"{ledger['state']} v{ledger['source_version']}" if ledger else "none"
        role = (
            "production" if view.serving else f"{view.status}{' (write target)' if view.write_target else ''}"
        )
        if served_by == view.generation:
            role += " ← this hit"
        table.add_row(
            view.generation,
            role,
            f"[{style}]{view.verdict}[/]",
            f"{len(view.chunks)} / {view.expected_chunks}",
            ", ".join(str(v) for v in view.indexed_versions) or "-",
            ledger_text,
            "; ".join([*view.reasons, *(n for n in view.versus_production if not view.serving)]),
        )
    console.print(table)
    if explanation.recent is None:
        console.print("recent decisions: not recorded (run `dynembed up` to record them)")
    elif not explanation.recent:
        console.print("recent decisions: none since `dynembed up` started")
    else:
        console.print(
            "recent: "
            + "; ".join(
                f"{e['event']} v{e.get('version')}"
                + (f" in {e['generation']}" if e.get("generation") else "")
                + (f" after {e['lag_s']:.2f} s" if e.get("lag_s") is not None else "")
                for e in explanation.recent
            )
        )
