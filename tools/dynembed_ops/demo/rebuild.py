"""`dynembed demo`, second part: rebuild from the baseline model to the candidate through the
real state machine on moto (the definition the CDK stack deploys), compare both generations on
the golden set side by side, promote or reject, search, roll back, and search again.

The pumps keep running during the rebuild, so the candidate is a live write target the whole
time, as it would be on AWS.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dynembed.core.errors import UnknownGenerationError
from dynembed.core.models import ChunkerSpec
from dynembed.core.source_scan import live_documents
from dynembed.embedders.catalog import spec_for
from dynembed.rebuild import steps
from dynembed.rebuild.generations import generation_id_for
from dynembed.rebuild.progress import BackfillProgress
from dynembed_ops.demo.state import DemoState
from dynembed_ops.local.stepfunctions import (
    install_rebuild_workflow,
    start_rebuild,
    wait_for_execution,
)

REBUILD_TIMEOUT_S = 900.0
ResultRow = tuple[str, str, int, float]


def run_rebuild_part(state: DemoState, after_decision: Callable[[], None] | None = None) -> None:
    """``after_decision`` runs once the gate has decided, while the outcome still serves (before
    the demo rolls a promotion back): the monitors check the generation that was just chosen."""
    options, console = state.options, state.console
    assert options.candidate_model is not None
    svc = state.stack.services()
    alias = svc.settings.index_alias
    retrieval, vectors = options.candidate_retrieval, options.candidate_vectors
    changes = [options.candidate_model]
    changes += [retrieval.describe()] if retrieval.hybrid else []
    changes += [vectors.describe()] if vectors.quantized else []
    console.rule(f"[bold]Rebuild: {options.baseline_model} → {', '.join(changes)}")
    baseline = next(g for g in svc.registry.list() if g.index_name == svc.index.alias_target(alias))
    probe_query = state.golden.queries[state.golden.judged_query_ids[0]]
    alias_before = svc.index.alias_target(alias)
    results_before = _results(state, probe_query)

    machine = install_rebuild_workflow(state.stack)
    gen_id = generation_id_for(
        spec_for(options.candidate_model), ChunkerSpec(), retrieval=retrieval, vectors=vectors
    )
    payload = {
        "generation_id": gen_id,
        "model": options.candidate_model,
        "retrieval": retrieval.model_dump(mode="json"),
        "vectors": vectors.model_dump(mode="json"),
        "eval": {"queries": str(options.queries.resolve()), "qrels": str(options.qrels.resolve())},
        "k": options.k,
        "eval_principal": ["reader"],
        "backfill_segments": 2,
        "page_size": 50,
        "pages_per_task": 4,
        "catchup_wait_s": 1,
        "catchup_max_checks": 300,
        "comment": "dynembed demo",
    }
    console.print(
        f"Step Functions (moto's ASL interpreter) runs the rebuild definition; candidate [bold]{gen_id}[/]"
    )
    started = time.monotonic()
    with state.stack.background():
        output = _run_with_progress(state, machine, payload, gen_id)
    console.print(f"Workflow finished [dim]({time.monotonic() - started:.1f} s)[/]: {_path(state)}")

    evaluation = output["evaluation"]
    _print_estimate(state, output.get("estimate") or {}, evaluation.get("estimate") or {})
    _print_comparison(state, baseline.model.name, options.candidate_model, evaluation)
    candidate = svc.registry.get(gen_id)
    decision = output["decision"]
    alias_after = svc.index.alias_target(alias)
    summary = state.summary
    summary.update(
        rebuild_generation=gen_id,
        decision=decision,
        alias_before=alias_before,
        alias_after=alias_after,
        evaluation_baseline={
            **_metrics(baseline.model.name, evaluation["baseline"], evaluation["k"]),
            **_settings(svc.registry.get(baseline.id), evaluation.get("baseline_index")),
        },
        evaluation_candidate={
            **_metrics(options.candidate_model, evaluation["candidate"], evaluation["k"]),
            **_settings(candidate, evaluation.get("index")),
        },
        embeddings_reused=evaluation["embeddings"]["reused"],
        embeddings_computed=evaluation["embeddings"]["computed"],
        estimate_vs_actual=evaluation.get("estimate"),
        report_location=evaluation["report_location"],
    )
    if decision == "promoted":
        console.print(f"[green]Promoted[/]: alias {alias} now serves {alias_after} (one _aliases request)")
        _print_results(state, "After promotion", probe_query, _results(state, probe_query))
        if after_decision is not None:
            after_decision()
        move = steps.rollback(svc)
        results_after_rollback = _results(state, probe_query)
        same = results_after_rollback == results_before
        summary["rollback_ok"] = bool(svc.index.alias_target(alias) == alias_before and same)
        console.print(
            f"Rolled back in one request: alias → {move['after']}; the same search returns "
            f"{'the very same results as before the promotion' if same else '[red]DIFFERENT results[/]'}"
        )
        _print_results(state, "After rollback", probe_query, results_after_rollback)
    else:
        reasons = output.get("reasons") or evaluation.get("reasons") or []
        summary["rejection_reasons"] = reasons
        # Nothing to roll back: the alias never moved. rollback_ok reports exactly that.
        summary["rollback_ok"] = bool(alias_after == alias_before)
        console.print(
            f"[yellow]Rejected[/]: {'; '.join(reasons) or 'gate failed'}. The alias never moved "
            f"({'yes' if alias_after == alias_before else '[red]it did[/]'}), so no rollback is needed."
        )
        if after_decision is not None:
            after_decision()
    summary["generations"] = [
        {
            "id": g.id,
            "model": g.model.name,
            "chunker": g.chunker.version,
            "retrieval": g.retrieval.describe(),
            "vectors": g.vectors.describe(),
            "status": g.status.value,
        }
        for g in svc.registry.list()
    ]


def _run_with_progress(
    state: DemoState, machine: str, payload: dict[str, Any], gen_id: str
) -> dict[str, Any]:
    svc = state.stack.services()
    sfn = state.stack.client("stepfunctions")
    total = len(live_documents(svc.schema, svc.source).docs)
    execution = start_rebuild(sfn, machine, payload)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} docs"),
    )
    with Progress(*columns, TimeElapsedColumn(), console=state.console, transient=True) as progress:
        task = progress.add_task("backfill", total=total)
        live = _live_traffic(state)
        while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
            done = _docs_backfilled(svc, gen_id)
            progress.update(task, completed=min(done, total), description=f"{_current_state(sfn, execution)}")
            next(live)
            time.sleep(0.5)
    return wait_for_execution(sfn, execution, REBUILD_TIMEOUT_S)


def _live_traffic(state: DemoState) -> Iterator[None]:
    """Users searching while the candidate builds: one live search through the alias per
    progress tick, the golden queries in turn. The search path samples them and shadows them on
    the candidate while it is a write target (off the response path); the Evaluate step puts the
    overlap of the two answers in the report."""
    texts = [state.golden.queries[q] for q in state.golden.judged_query_ids]
    for text in itertools.cycle(texts):
        state.stack.services().search(text, "reader", k=state.options.k)
        yield


def _docs_backfilled(svc: Any, gen_id: str) -> int:
    try:
        progress = BackfillProgress.from_record(svc.registry.get(gen_id).backfill)
    except UnknownGenerationError:  # not registered yet
        return 0
    return progress.total("docs") if progress else 0


def _current_state(sfn: Any, execution: str) -> str:
    events = sfn.get_execution_history(executionArn=execution, reverseOrder=True, maxResults=20)["events"]
    for event in events:
        if "stateEnteredEventDetails" in event:
            return str(event["stateEnteredEventDetails"]["name"])
    return "starting"


def _path(state: DemoState) -> str:
    """The states the execution went through, consecutive repeats (pages, checks) collapsed."""
    sfn = state.stack.client("stepfunctions")
    from dynembed_ops.local.stepfunctions import state_machine_arn

    latest = sfn.list_executions(stateMachineArn=state_machine_arn(sfn))["executions"][0]["executionArn"]
    names: list[str] = []
    token = None
    while True:
        kwargs: dict[str, Any] = {"executionArn": latest, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.get_execution_history(**kwargs)
        names += [
            e["stateEnteredEventDetails"]["name"] for e in page["events"] if "stateEnteredEventDetails" in e
        ]
        token = page.get("nextToken")
        if not token:
            break
    inner = {"BackfillPage", "SegmentDone", "SegmentFinished"}
    path: list[str] = []
    for name in names:
        if name in inner or (path and path[-1] == name):
            continue
        path.append(name)
    return " → ".join(path)


def _print_estimate(state: DemoState, estimate: dict[str, Any], versus: dict[str, Any]) -> None:
    """The Estimate state's figures (made before anything was embedded) beside the actual ones."""
    for line in estimate.get("summary") or []:
        state.console.print(f"  estimate: {line}")
    if not versus:
        return
    table = Table(title="Rebuild estimate vs actual")
    for column in ("figure", "estimate", "actual", "error"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for figure, row in versus.items():
        error = row.get("error")
        table.add_row(
            figure,
            f"{row['estimate']:,.6g}",
            f"{row['actual']:,.6g}",
            "-" if error is None else f"{error:+.1%}",
        )
    state.console.print(table)


def _settings(gen: Any, profile: dict[str, Any] | None) -> dict[str, Any]:
    """How the generation retrieves and what it costs, for the JSON summary."""
    profile = profile or {}
    return {
        "retrieval": gen.retrieval.model_dump(mode="json", exclude_none=True),
        "precision": gen.vectors.precision.value,
        "vectors": gen.vectors.model_dump(mode="json", exclude_none=True),
        "threshold": gen.threshold.value if gen.threshold else None,
        "memory_per_vector_bytes": profile.get("memory_per_vector_bytes"),
        "index_memory_bytes": profile.get("index_memory_bytes"),
        "latency_ms": profile.get("latency_ms"),
    }


def _metrics(model: str, values: dict[str, float] | None, k: int) -> dict[str, Any]:
    values = values or {}
    return {
        "model": model,
        f"ndcg@{k}": values.get("ndcg"),
        f"recall@{k}": values.get("recall"),
        f"mrr@{k}": values.get("mrr"),
    }


def _print_comparison(
    state: DemoState, baseline_model: str, candidate_model: str, evaluation: dict[str, Any]
) -> None:
    k = evaluation["k"]
    table = Table(title=f"Evaluation side by side ({len(state.golden.judged_query_ids)} queries, k={k})")
    table.add_column("metric")
    table.add_column(f"active: {baseline_model}", justify="right")
    table.add_column(f"candidate: {candidate_model}", justify="right")
    table.add_column("delta", justify="right")
    base, cand = evaluation.get("baseline") or {}, evaluation["candidate"]
    for key, label in (("ndcg", "nDCG"), ("recall", "Recall"), ("mrr", "MRR")):
        before = base.get(key)
        delta = "" if before is None else f"{cand[key] - before:+.3f}"
        table.add_row(f"{label}@{k}", "-" if before is None else f"{before:.3f}", f"{cand[key]:.3f}", delta)
    table.add_row(
        "wins / losses / ties",
        "",
        f"{evaluation['wins']} / {evaluation['losses']} / {evaluation['ties']}",
        "",
    )
    base_index, cand_index = evaluation.get("baseline_index") or {}, evaluation.get("index") or {}
    table.add_row("retrieval", "", str(evaluation.get("retrieval")), "")
    table.add_row("precision", "", str(evaluation.get("precision")), "")
    table.add_row(
        "memory / vector (B)",
        _number(base_index.get("memory_per_vector_bytes")),
        _number(cand_index.get("memory_per_vector_bytes")),
        "",
    )
    table.add_row(
        "search p50 / p95 (ms)",
        _latency(base_index.get("latency_ms")),
        _latency(cand_index.get("latency_ms")),
        "",
    )
    if evaluation.get("threshold") is not None:
        table.add_row("score threshold", "", f"{evaluation['threshold']:.4f}", "")
    usage = evaluation["embeddings"]
    table.add_row("embeddings reused / computed", "", f"{usage['reused']} / {usage['computed']}", "")
    coverage = evaluation["coverage"]
    table.add_row("coverage", "", f"{coverage['indexed']}/{coverage['source']}", "")
    for probe, ok in sorted(evaluation["probes"].items()):
        table.add_row(f"probe {probe}", "", "pass" if ok else "[red]FAIL[/]", "")
    state.console.print(table)
    verdict = "[green]PASSED[/]" if evaluation["passed"] else "[red]FAILED[/]"
    state.console.print(
        f"Gate {verdict}{': ' + '; '.join(evaluation['reasons']) if evaluation['reasons'] else ''}"
    )
    state.console.print(f"Report: {evaluation['report_location']}")


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _latency(values: dict[str, float] | None) -> str:
    return "-" if not values else f"{values['p50']:.0f} / {values['p95']:.0f}"


def _results(state: DemoState, text: str) -> list[ResultRow]:
    svc = state.stack.services()
    response = svc.search(text, "reader", k=state.options.k)
    return [(r.doc_id, r.chunk_key, r.source_version, round(r.score, 6)) for r in response.results]


def _print_results(state: DemoState, title: str, text: str, rows: list[ResultRow]) -> None:
    table = Table(title=f"{title}: “{text[:60]}”", show_lines=False)
    for column in ("rank", "doc", "chunk", "v", "score"):
        table.add_column(column)
    for rank, (doc_id, key, version, score) in enumerate(rows[:3], start=1):
        table.add_row(str(rank), doc_id, key[:12], str(version), f"{score:.3f}")
    state.console.print(table)
