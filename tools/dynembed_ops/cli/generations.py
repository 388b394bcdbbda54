"""`dynembed rebuild | approve | rollback | generations | retire | backfill`: generation
commands against the running `dynembed up` stack. A rebuild runs the real state machine there
(moto's interpreter, the same definition the CDK stack deploys); the others are small actions
over the same domain functions the workflow Lambda exposes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markdown import Markdown
from rich.table import Table

from dynembed.core.errors import DynembedError
from dynembed_ops.cli.common import CommandSet, JsonFlag, connect, console, emit, friendly

commands = CommandSet()


def _services() -> Any:
    """The running stack's services, with the domain's JSON logs held to warnings (they would
    otherwise mix with this command's output; the stack's own log level applies from here)."""
    import os

    from dynembed.core.observability import logger

    svc = connect()
    logger.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"))
    return svc


def _sfn() -> Any:
    import boto3

    return boto3.client("stepfunctions")


def _machine(sfn: Any) -> str:
    from dynembed_ops.local.stepfunctions import state_machine_arn

    machine = state_machine_arn(sfn)
    if machine is None:
        raise DynembedError(
            "the running stack has no rebuild workflow: restart `dynembed up` with this version of dynembed"
        )
    return machine


@commands.command()
@friendly
def rebuild(
    model: Annotated[str, typer.Option(help="Catalog id of the candidate's model (see `dynembed models`)")],
    chunker_target_chars: Annotated[int | None, typer.Option(help="Chunker target size")] = None,
    chunker_max_chars: Annotated[int | None, typer.Option(help="Chunker hard maximum")] = None,
    chunker_min_chars: Annotated[int | None, typer.Option(help="Chunker merge threshold")] = None,
    chunker_max_doc_chars: Annotated[
        int | None, typer.Option(help="Truncate docs (experiments only)")
    ] = None,
    queries: Annotated[Path | None, typer.Option(help="Golden-set queries (JSONL)")] = None,
    qrels: Annotated[Path | None, typer.Option(help="Golden-set judgments (TSV)")] = None,
    retrieval: Annotated[str | None, typer.Option(help="vector (k-NN) or hybrid (BM25 + k-NN fused)")] = None,
    lexical_weight: Annotated[
        float | None, typer.Option(help="Hybrid: weight of the BM25 sub-query (vector gets 1 - W)")
    ] = None,
    fusion: Annotated[str | None, typer.Option(help="Hybrid: linear (min-max) or rrf")] = None,
    rank_constant: Annotated[int | None, typer.Option(help="Hybrid rrf: rank constant (default 60)")] = None,
    precision: Annotated[
        str | None, typer.Option(help="Vector precision: float32, float16, byte or binary")
    ] = None,
    on_disk: Annotated[
        bool, typer.Option("--on-disk", help="Quantized graph in memory, full vectors on disk")
    ] = False,
    oversample: Annotated[
        float | None, typer.Option(help="Rescore oversample*k candidates at full precision")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="A rebuild input JSON (see events/); options override it")
    ] = None,
    generation_id: Annotated[
        str | None, typer.Option(help="Resume this failed or interrupted rebuild")
    ] = None,
    approve: Annotated[
        bool,
        typer.Option("--approve", "--require-approval", help="Wait for `dynembed approve` before promoting"),
    ] = False,
    approve_estimate: Annotated[
        bool, typer.Option("--approve-estimate", help="Wait for `dynembed approve` after the estimate")
    ] = False,
    estimate_only: Annotated[
        bool, typer.Option("--estimate", help="Print what the rebuild would cost and take; start nothing")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the decision")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 3600.0,
    as_json: JsonFlag = False,
) -> None:
    """Build a new generation, evaluate it against the active one, promote it if the gate passes."""
    from dynembed.rebuild.inputs import parse_rebuild_input
    from dynembed_ops.local.stepfunctions import start_rebuild, wait_for_execution

    if (queries is None) != (qrels is None):
        raise ValueError("--queries and --qrels go together")
    payload: dict[str, Any] = _read_input(input_file) if input_file else {}
    payload["model"] = model
    chunker = dict(payload.get("chunker") or {})
    for field, value in (
        ("target_chars", chunker_target_chars),
        ("max_chars", chunker_max_chars),
        ("min_chars", chunker_min_chars),
        ("max_doc_chars", chunker_max_doc_chars),
    ):
        if value is not None:
            chunker[field] = value
    if chunker:
        payload["chunker"] = chunker
    _retrieval_options(payload, retrieval, lexical_weight, fusion, rank_constant)
    _vector_options(payload, precision, on_disk, oversample)
    if queries is not None and qrels is not None:
        # The workflow runs in the `up` process, maybe in another directory: absolute paths.
        payload["eval"] = {"queries": str(queries.resolve()), "qrels": str(qrels.resolve())}
    if approve:
        payload["require_approval"] = True
    if approve_estimate:
        payload["approve_estimate"] = True
    config = parse_rebuild_input({**payload, "generation_id": generation_id})  # fail fast, here
    if estimate_only:
        _print_estimate(config, as_json)
        return
    payload["generation_id"] = generation_id or config.new_generation_id()
    svc = _services()
    sfn = _sfn()
    execution = start_rebuild(sfn, _machine(sfn), payload)
    gen_id = payload["generation_id"]
    if not wait:
        accepted = _accepted(sfn, execution, timeout_s=30.0)  # a refused input is an error here
        if not emit({"execution_arn": execution, "generation_id": gen_id, "accepted": accepted}, as_json):
            state = "started" if accepted else "started (still validating its input)"
            console.print(f"rebuild {state}: generation [bold]{gen_id}[/]\nexecution {execution}")
        return
    try:
        with console.status(f"rebuilding {gen_id}") as status:
            deadline = time.monotonic() + timeout
            while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
                if time.monotonic() > deadline:
                    raise DynembedError(f"rebuild {gen_id} still running after {timeout:.0f} s: {execution}")
                status.update(f"rebuilding {gen_id}: {_progress_line(svc, gen_id)}")
                time.sleep(1.0)
            output = wait_for_execution(sfn, execution, timeout_s=10)
    except DynembedError as exc:
        registered = any(g.id == gen_id for g in svc.registry.list())
        hint = f" (resume with --generation-id {gen_id})" if registered else ""
        raise DynembedError(f"{exc}{hint}") from exc
    if emit(output, as_json):
        return
    _print_outcome(output)


def _read_input(path: Path) -> dict[str, Any]:
    """A rebuild input file: a JSON object, or an error naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"rebuild input {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"rebuild input {path} must hold an object (see events/rebuild_input.json)")
    return data


_VALIDATION_STATES = frozenset({"Validate", "InvalidInput"})


def _accepted(sfn: Any, execution: str, timeout_s: float, poll_s: float = 0.5) -> bool:
    """Wait until the execution is past its Validate state: True once it is, False if it is
    still validating at the deadline; a refused input (the execution failed) raises with the
    workflow's reason, since no generation was registered to say so."""
    from dynembed_ops.local.stepfunctions import wait_for_execution

    deadline = time.monotonic() + timeout_s
    while True:
        status = sfn.describe_execution(executionArn=execution)["status"]
        if status != "RUNNING":
            wait_for_execution(sfn, execution, timeout_s=0)  # raises with the cause unless it succeeded
            return True
        events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        entered = {
            (e.get("stateEnteredEventDetails") or {}).get("name")
            for e in events
            if e["type"].endswith("StateEntered")
        }
        if entered - _VALIDATION_STATES - {None}:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def _print_estimate(config: Any, as_json: bool) -> None:
    from dynembed.rebuild.steps import estimate_for

    with console.status("estimating (sampling the source table)"):
        result = estimate_for(_services(), config)
    if emit(result.model_dump(mode="json"), as_json):
        return
    console.print(f"[bold]estimate[/] for model {result.model_id}, chunker {result.chunker_version}")
    for line in result.lines():
        console.print(f"  {line}")


def _retrieval_options(
    payload: dict[str, Any],
    mode: str | None,
    lexical_weight: float | None,
    fusion: str | None,
    rank_constant: int | None,
) -> None:
    """--retrieval/--lexical-weight/--fusion/--rank-constant over the input's ``retrieval``
    (the input model validates them: a hybrid option without --retrieval hybrid is named)."""
    base = payload.get("retrieval") or {}
    retrieval = dict({"mode": base} if isinstance(base, str) else base)
    for field, value in (
        ("mode", mode),
        ("lexical_weight", lexical_weight),
        ("fusion", fusion),
        ("rank_constant", rank_constant),
    ):
        if value is not None:
            retrieval[field] = value
    if retrieval:
        payload["retrieval"] = retrieval


def _vector_options(
    payload: dict[str, Any], precision: str | None, on_disk: bool, oversample: float | None
) -> None:
    vectors = dict(payload.get("vectors") or {})
    for field, value in (("precision", precision), ("on_disk", on_disk or None), ("oversample", oversample)):
        if value is not None:
            vectors[field] = value
    if vectors:
        payload["vectors"] = vectors


def _progress_line(svc: Any, gen_id: str) -> str:
    from dynembed.rebuild.progress import BackfillProgress

    try:
        gen = svc.registry.get(gen_id)
    except DynembedError:
        return "validating"
    progress = BackfillProgress.from_record(gen.backfill)
    docs = progress.total("docs") if progress else 0
    return f"{gen.status.value}, {docs:,} docs backfilled"


def _print_trade_off(table: Table, evaluation: dict[str, Any]) -> None:
    """Retrieval, precision, memory and latency rows under the metrics, then the table."""
    base, cand = evaluation.get("baseline_index") or {}, evaluation.get("index") or {}
    table.add_row("retrieval", "", str(evaluation.get("retrieval", "-")))
    table.add_row("precision", "", str(evaluation.get("precision", "-")))
    for label, key in (
        ("memory / vector (B)", "memory_per_vector_bytes"),
        ("index memory (B)", "index_memory_bytes"),
    ):
        table.add_row(label, _figure(base.get(key)), _figure(cand.get(key)))
    for pct in ("p50", "p95"):
        table.add_row(
            f"search {pct} (ms)",
            _figure((base.get("latency_ms") or {}).get(pct)),
            _figure((cand.get("latency_ms") or {}).get(pct)),
        )
    console.print(table)


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def _print_outcome(output: dict[str, Any]) -> None:
    evaluation = output.get("evaluation") or {}
    decision = output.get("decision", "?")
    colour = "green" if decision == "promoted" else "yellow"
    console.print(f"[{colour}]{decision}[/]: generation {output.get('generation_id')}")
    base, cand = evaluation.get("baseline") or {}, evaluation.get("candidate") or {}
    table = Table()
    for column in ("metric", "active", "candidate"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for key in ("ndcg", "recall", "mrr"):
        before = base.get(key)
        table.add_row(
            f"{key}@{evaluation.get('k')}",
            "-" if before is None else f"{before:.3f}",
            f"{cand.get(key, 0):.3f}",
        )
    _print_trade_off(table, evaluation)
    for reason in output.get("reasons") or []:
        console.print(f"  - {reason}")
    usage = evaluation.get("embeddings") or {}
    console.print(f"embeddings: {usage.get('reused', 0)} reused, {usage.get('computed', 0)} computed")
    for figure, row in (evaluation.get("estimate") or {}).items():
        error = row.get("error")
        console.print(
            f"  {figure}: estimated {row['estimate']:,.6g}, actual {row['actual']:,.6g}"
            + ("" if error is None else f" ({error:+.1%})")
        )
    if evaluation.get("threshold") is not None:
        console.print(f"score threshold (calibrated on the golden set): {evaluation['threshold']:.4f}")
    console.print(
        f"report: {evaluation.get('report_location')}  (dynembed generations --show {output.get('generation_id')})"
    )


@commands.command()
@friendly
def approve(
    generation_id: str,
    reject: Annotated[bool, typer.Option("--reject", help="Decline instead of approving")] = False,
    by: Annotated[str, typer.Option(help="Who decides (recorded on the generation)")] = "cli",
    reason: Annotated[str, typer.Option(help="Why (recorded)")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Answer a rebuild that waits for approval: promote (default) or reject its candidate."""
    from dynembed.rebuild.steps import answer_approval

    svc = _services()
    result = answer_approval(svc, _sfn(), generation_id, approved=not reject, by=by, reason=reason)
    if not emit(result, as_json):
        console.print(f"{'declined' if reject else 'approved'}: {generation_id}")


@commands.command()
@friendly
def rollback(as_json: JsonFlag = False) -> None:
    """Serve the standby generation again: one alias request, no reprocessing."""
    from dynembed.rebuild.steps import rollback as roll_back

    move = roll_back(_services())
    if not emit(move, as_json):
        console.print(
            f"alias {move['alias']}: {move['before']} → [bold]{move['after']}[/] (active: {move['active']})"
        )


@commands.command()
@friendly
def generations(
    show: Annotated[str | None, typer.Option(help="Show this generation's evaluation report")] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="With --show: write the report as one self-contained HTML file (or into this folder)",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List generations, or show one with its evaluation report."""
    if html is not None and not show:
        raise ValueError("--html goes with --show ID")
    svc = _services()
    if show and html is not None:
        _write_html(svc, show, html, as_json)
        return
    if show:
        _show(svc, show, as_json)
        return
    gens = svc.registry.list()
    if emit([_row(g) for g in gens], as_json):
        return
    serving = svc.index.alias_target(svc.settings.index_alias)
    table = Table(title="generations")
    for column in (
        "id",
        "model",
        "chunker",
        "retrieval",
        "vectors",
        "status",
        "write target",
        "serving",
        "created",
    ):
        table.add_column(column)
    for g in gens:
        table.add_row(
            g.id,
            g.model.name,
            g.chunker.version,
            g.retrieval.describe(),
            g.vectors.describe(),
            g.status.value,
            "yes" if g.write_target else "",
            "alias" if g.index_name == serving else "",
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(g.created_at)),
        )
    console.print(table)


def _row(gen: Any) -> dict[str, Any]:
    return {
        "id": gen.id,
        "model": gen.model.name,
        "model_id": gen.model.model_id,
        "chunker": gen.chunker.version,
        "retrieval": gen.retrieval.model_dump(mode="json", exclude_none=True),
        "vectors": gen.vectors.model_dump(mode="json", exclude_none=True),
        "threshold": gen.threshold.value if gen.threshold else None,
        "status": gen.status.value,
        "write_target": gen.write_target,
        "index": gen.index_name,
        "created_at": gen.created_at,
    }


def _show(svc: Any, generation_id: str, as_json: bool) -> None:
    from dynembed.quality.report import render_markdown_report

    gen = svc.registry.get(generation_id)
    if emit(gen.model_dump(mode="json"), as_json):
        return
    console.print(
        f"[bold]{gen.id}[/]  {gen.status.value}  model {gen.model.model_id}  chunker {gen.chunker.version}"
    )
    threshold = f"{gen.threshold.value:.4f} ({gen.threshold.method})" if gen.threshold else "not calibrated"
    console.print(
        f"retrieval {gen.retrieval.describe()}  vectors {gen.vectors.describe()}  score threshold {threshold}"
    )
    report = gen.report or {}
    for key in ("rejected_reason", "failed_reason", "previous_failure"):
        if report.get(key):
            console.print(f"{key.replace('_', ' ')}: {report[key]}")
    if "gate_passed" in report:
        console.print(Markdown(render_markdown_report(report)))
    else:
        console.print("no evaluation report yet")


def _write_html(svc: Any, generation_id: str, out: Path, as_json: bool) -> None:
    from dynembed.quality.html import render_report

    gen = svc.registry.get(generation_id)
    path = out / f"{gen.id}.html" if out.is_dir() else out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        render_report(gen.report or {}, title=f"Generation {gen.id} ({gen.status.value})"), encoding="utf-8"
    )
    if not emit({"generation_id": gen.id, "html": str(path.resolve())}, as_json):
        console.print(f"report of {gen.id}: {path.resolve()}")


@commands.command()
@friendly
def retire(generation_id: str, as_json: JsonFlag = False) -> None:
    """Delete a standby's or failed generation's index and ledger rows (no rollback to it after)."""
    from dynembed.rebuild.steps import retire as retire_generation

    result = retire_generation(_services(), generation_id)
    if not emit(result, as_json):
        console.print(f"retired {generation_id} ({result['ledger_rows_deleted']} ledger rows removed)")


@commands.command()
@friendly
def backfill(
    tenant: Annotated[str | None, typer.Option(help="Every doc of this tenant")] = None,
    source_type: Annotated[str | None, typer.Option(help="Every doc of this source type")] = None,
    ids: Annotated[str | None, typer.Option(help="Comma-separated doc ids")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Reconcile a subset into the current write targets (the normal path, via the jobs queue)."""
    from dynembed.rebuild.steps import targeted_backfill

    result = targeted_backfill(
        _services(), tenant=tenant, source_type=source_type, ids=ids.split(",") if ids else None
    )
    if not emit(result, as_json):
        console.print(
            f"{result['jobs_enqueued']} reconcile jobs enqueued for {', '.join(result['write_targets'])}"
        )
