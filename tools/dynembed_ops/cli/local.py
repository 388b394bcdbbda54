"""Commands of the local stack and the source app: demo, up, load, put, delete, search, models."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dynembed.core.config import TUNING
from dynembed_ops.cli.common import CommandSet, JsonFlag, connect, console, emit, friendly
from dynembed_ops.source_app import source_app_for

commands = CommandSet()


# ---- demo ------------------------------------------------------------------------------------------


@commands.command()
@friendly
def demo(
    corpus: Annotated[Path | None, typer.Option(help="JSONL corpus {doc_id,title,body,...}")] = None,
    queries: Annotated[Path | None, typer.Option(help="JSONL queries {query_id,text}")] = None,
    qrels: Annotated[Path | None, typer.Option(help="TSV qrels query_id<TAB>doc_id<TAB>relevance")] = None,
    edits: Annotated[Path | None, typer.Option(help="Edit stream (.jsonl.gz) to replay")] = None,
    no_edits: Annotated[bool, typer.Option("--no-edits", help="Skip the edit replay")] = False,
    max_commits: Annotated[int, typer.Option(help="Edit commits to replay")] = 20,
    baseline_model: Annotated[str, typer.Option(help="Model of the first generation")] = "static-64",
    candidate_model: Annotated[
        str | None,
        typer.Option(
            help="Model to rebuild to ('none' to skip; default minilm, or the baseline's model "
            "when only --candidate-retrieval/--candidate-precision change)"
        ),
    ] = None,
    candidate_retrieval: Annotated[
        str | None, typer.Option(help="The candidate's retrieval: vector or hybrid")
    ] = None,
    candidate_fusion: Annotated[str | None, typer.Option(help="Hybrid candidate: linear or rrf")] = None,
    candidate_lexical_weight: Annotated[
        float | None, typer.Option(help="Hybrid candidate: weight of BM25")
    ] = None,
    candidate_precision: Annotated[
        str | None, typer.Option(help="The candidate's vectors: float32, float16, byte or binary")
    ] = None,
    candidate_oversample: Annotated[
        float | None, typer.Option(help="Quantized candidate: rescoring oversample factor")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the summary as JSON here")] = None,
) -> None:
    """Run the whole pipeline locally on real data and print a summary."""
    from dynembed_ops import paths
    from dynembed_ops.demo.run import DemoOptions, candidate_settings, run_demo

    if (queries is None) != (qrels is None):
        raise ValueError("--queries and --qrels go together")
    retrieval, vectors = candidate_settings(
        candidate_retrieval,
        candidate_fusion,
        candidate_lexical_weight,
        candidate_precision,
        candidate_oversample,
    )
    changes_settings = retrieval.hybrid or vectors.quantized
    given = [
        name
        for name, value in (
            ("--candidate-retrieval", candidate_retrieval),
            ("--candidate-fusion", candidate_fusion),
            ("--candidate-lexical-weight", candidate_lexical_weight),
            ("--candidate-precision", candidate_precision),
            ("--candidate-oversample", candidate_oversample),
        )
        if value is not None
    ]
    if candidate_model is not None and candidate_model.lower() == "none" and given:
        raise ValueError(f"--candidate-model none skips the rebuild, so {', '.join(given)} would do nothing")
    if candidate_model is None:
        candidate_model = baseline_model if changes_settings else "minilm"
    options = DemoOptions(
        corpus=corpus or paths.FAQ_CORPUS,
        queries=queries or paths.FAQ_QUERIES,
        qrels=qrels or paths.FAQ_QRELS,
        edits=None if no_edits else (edits or paths.EDITSTREAM),
        max_commits=max_commits,
        baseline_model=baseline_model,
        candidate_model=None if candidate_model.lower() == "none" else candidate_model,
        candidate_retrieval=retrieval,
        candidate_vectors=vectors,
        json_out=json_out,
    )
    summary = run_demo(options, console)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2, default=str))
        console.print(f"summary written to {json_out}")


# ---- local stack -----------------------------------------------------------------------------------


@commands.command()
@friendly
def up(
    port: Annotated[int, typer.Option(help="AWS endpoint port (moto)")] = 4566,
    opensearch_port: Annotated[int, typer.Option(help="OpenSearch endpoint port (osmem)")] = 9200,
    model: Annotated[str, typer.Option(help="Embedding model of the first generation")] = "hash-256",
    schema: Annotated[Path | None, typer.Option(help="Source schema JSON/YAML")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep the source table and the generation registry here, written as they change, "
            "and restore them at start (indexes are rebuilt from them). Without it, state is in memory."
        ),
    ] = None,
    canary_every: Annotated[
        float, typer.Option(help="Minutes between canary runs (0: none); golden set: DYNEMBED_EVAL_DIR")
    ] = float(TUNING.canary_rate_minutes),
    sentinel_every: Annotated[
        float, typer.Option(help="Minutes between end-to-end sentinel runs (0: none)")
    ] = float(TUNING.sentinel_rate_minutes),
    sample_rate: Annotated[float, typer.Option(help="Share of live searches sampled (signals)")] = 1.0,
    shadow_rate: Annotated[
        float, typer.Option(help="Share of live searches shadowed on a building candidate")
    ] = 1.0,
    keep_query_text: Annotated[
        bool, typer.Option("--keep-query-text", help="Keep sampled query text (else sha256 + length)")
    ] = False,
) -> None:
    """Run a local stack on localhost until Ctrl-C; other commands talk to it (from any folder
    of the checkout). Its state is in memory unless ``--data-dir`` keeps it. The canary and the
    sentinel run on their schedules, as EventBridge runs them in AWS."""
    from dynembed.core.schema import SourceSchema
    from dynembed.embedders.catalog import spec_for
    from dynembed_ops.local.stack import TELEMETRY_FILE_NAME, LocalStack, state_dir_for_up

    source_schema = SourceSchema.from_file(schema) if schema else None
    spec_for(model)  # an unknown model fails before anything starts
    for name, rate in (("--sample-rate", sample_rate), ("--shadow-rate", shadow_rate)):
        if not 0 <= rate <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")
    state_dir = state_dir_for_up()
    stack = LocalStack(
        schema=source_schema,
        aws_port=port,
        opensearch_port=opensearch_port,
        data_dir=data_dir,
        query_sample_rate=sample_rate,
        shadow_sample_rate=shadow_rate,
        query_keep_text=keep_query_text,
    )
    stack_file = None

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        stack.start()
        assert stack.info is not None
        svc = stack.services()
        gen = svc.bootstrap(model)  # a restored active generation is kept as it is
        stack.persist()
        stack_file = stack.info.save(state_dir)
        if stack.restored is not None:
            _restore_report(stack)
        every = {"canary": canary_every * 60, "sentinel": sentinel_every * 60}
        stack.start_schedules(
            {name: seconds for name, seconds in every.items() if seconds > 0},
            {"canary": TUNING.canary_timeout_s, "sentinel": TUNING.sentinel_timeout_s},
        )
        console.print(
            f"[bold green]dynembed is up[/]  AWS endpoint: [bold]{stack.info.aws_url}[/]  "
            f"OpenSearch: {stack.info.opensearch_url}"
        )
        console.print(
            f"source table: {svc.settings.source_table}   generation: {gen.id} ({gen.model.model_id})"
        )
        if data_dir is None:
            console.print(
                "state is in memory: docs, generations and dead letters are lost when this stops "
                "(keep them with --data-dir DIR)"
            )
        else:
            console.print(
                f"state kept in {data_dir}: the source table and the generation registry, written as they "
                "change; indexes are rebuilt from them at start"
            )
        example, search_hint = _example_put(svc.schema)
        console.print(
            f"try: aws dynamodb put-item --endpoint-url {stack.info.aws_url} --region {stack.info.region} "
            f"--table-name {svc.settings.source_table} --item '{example}'"
        )
        console.print(f"then: {search_hint}        (Ctrl-C to stop)")
        stack.run_forever(telemetry_file=state_dir / TELEMETRY_FILE_NAME)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        if stack_file is not None:
            stack_file.unlink(missing_ok=True)
            console.print("stopped")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _restore_report(stack: Any) -> None:
    """Re-index what was restored before announcing the stack, and say what came back."""
    import time

    started = time.monotonic()
    restored = stack.restored
    if not restored.docs and not restored.generations:
        console.print(f"data dir {restored.path} holds nothing yet: starting empty")
        return
    what = f"{_count(restored.docs, 'doc')}, {_count(restored.generations, 'generation')}"
    console.print(f"restoring {what} from {restored.path}; re-indexing...")
    stack.drain(timeout_s=3600, drain_held=True)
    stack.services().telemetry.reset()  # re-indexing old docs is not the freshness of live changes
    console.print(f"restored {what} from {restored.path} (re-indexed in {time.monotonic() - started:.1f} s)")
    if restored.interrupted:
        console.print(
            f"[yellow]rebuilds running when the stack stopped are now failed:[/] {', '.join(restored.interrupted)} "
            "(start them again with `dynembed rebuild`)"
        )
    if restored.torn_tail:
        console.print("[yellow]the journal's last line was cut short by a kill and was left out[/]")


@commands.command()
@friendly
def load(
    path: Path,
    acl: Annotated[list[str] | None, typer.Option(help="ACL for docs that carry none (repeat)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Load a JSONL corpus into the source table of the running stack. Every line is checked
    first: with any bad line, all of them are listed and nothing is written. Docs without an
    access attribute get ``--acl`` (default: the public principal), since an empty ACL hides a doc."""
    from dataclasses import asdict

    from dynembed_ops.source_app import CorpusError

    svc = connect()
    defaults = (
        {svc.schema.access_attributes[0]: acl or [svc.schema.public_principal]}
        if svc.schema.access_attributes
        else {}
    )
    try:
        count = source_app_for(svc).load(path, defaults)
    except CorpusError as exc:
        if not as_json:
            raise
        emit({"loaded": 0, "bad_lines": exc.bad_lines, "problems": [asdict(p) for p in exc.problems]}, True)
        raise typer.Exit(1) from None
    if not emit({"loaded": count}, as_json):
        console.print(f"loaded {count} documents into {svc.settings.source_table}")


def _example_put(schema: Any) -> tuple[str, str]:
    """The `up` banner's example: an item in the stack schema's own attribute names (typed
    JSON for the AWS CLI), and the search that finds it."""
    from boto3.dynamodb.types import TypeSerializer

    from dynembed_ops.source_app import document_for

    tenant = "demo" if schema.tenant_isolation else None
    doc = document_for(schema, "hello", body="dynembed keeps embeddings fresh", title="Hello", tenant=tenant)
    doc[schema.version_attribute] = 1
    serializer = TypeSerializer()
    typed = json.dumps({k: serializer.serialize(v) for k, v in doc.items()}, separators=(",", ":"))
    search = f'dynembed search "fresh embeddings" --as {schema.public_principal}'
    return typed, search + (f" --tenant {tenant}" if tenant else "")


@commands.command()
@friendly
def put(
    doc_id: str,
    body: Annotated[str, typer.Option(help="Body text")],
    title: Annotated[str, typer.Option(help="Title")] = "",
    acl: Annotated[list[str] | None, typer.Option(help="Principals allowed (repeat)")] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write (create or update) one document; its version goes up by one."""

    from dynembed.core.schema import to_plain

    svc = connect()
    from dynembed_ops.source_app import document_for

    app = source_app_for(svc)  # the attributes the stack's schema reads, checked before writing
    item = app.put(
        document_for(app.schema, doc_id, body=body, title=title or None, acl=acl or None, tenant=tenant)
    )
    if not emit(to_plain(item), as_json):
        console.print(f"put {doc_id} version {item[svc.schema.version_attribute]}")


@commands.command()
@friendly
def delete(doc_id: str) -> None:
    """Delete one document from the source table."""

    svc = connect()
    source_app_for(svc).delete(doc_id)
    console.print(f"deleted {doc_id}")


@commands.command("search")
@friendly
def search_cmd(
    text: str,
    principal: Annotated[list[str], typer.Option("--as", help="User or group to search as (repeat)")],
    k: Annotated[int, typer.Option(help="Chunks to return")] = 10,
    generation: Annotated[
        str | None, typer.Option(help="Search this generation instead of the alias")
    ] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Explain each hit's doc (dynembed explain)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Search as a principal (k-NN or hybrid, as the generation says); the access filter sits
    inside every sub-query. Hits under the generation's score threshold are marked."""
    from dataclasses import asdict

    from dynembed_ops.cli.explain import explain_doc, print_explanation

    svc = connect()
    response = svc.search(text, principal, k=k, tenant=tenant, generation=generation)
    docs = list(dict.fromkeys(r.doc_id for r in response.results)) if explain else []
    explanations = [explain_doc(svc, doc) for doc in docs]
    if emit(
        {**asdict(response), "explain": [e.to_dict() for e in explanations]} if explain else asdict(response),
        as_json,
    ):
        return
    threshold = "" if response.threshold is None else f", threshold {response.threshold:.3f}"
    table = Table(
        title=f"{len(response.results)} results from {response.generation} ({response.model_id},"
        f" {response.retrieval}, {response.precision}{threshold})"
    )
    for col in ("score", "doc", "v", "chunk", "text"):
        table.add_column(col)
    for r in response.results:
        score = f"{r.score:.3f}" + (" (below)" if r.below_threshold else "")
        table.add_row(score, r.doc_id, str(r.source_version), r.chunk_key, r.text[:70].replace("\n", " "))
    console.print(table)
    for explanation in explanations:
        print_explanation(explanation, served_by=response.generation)


@commands.command()
@friendly
def models(as_json: JsonFlag = False) -> None:
    """List the embedding models dynembed knows."""
    from dataclasses import asdict

    from dynembed.embedders.catalog import available_models

    infos = available_models()
    if emit([asdict(m) for m in infos], as_json):
        return
    table = Table(title="embedding models")
    for col in ("id", "provider", "dim", "installed", "description"):
        table.add_column(col)
    for m in infos:
        table.add_row(m.id, m.provider, str(m.dimension), "yes" if m.installed else "no", m.description)
    console.print(table)
