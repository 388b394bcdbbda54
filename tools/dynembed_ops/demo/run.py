"""`dynembed demo`: the whole pipeline on real data, on this machine.

Loads a QA corpus through the source table, syncs it, evaluates search, replays real edits,
changes metadata on one doc, revokes access on another, deletes a third, then (when a candidate
model is given) rebuilds a generation, compares and promotes it, runs the canary and the
end-to-end sentinel on what serves, writes the HTML report, and rolls back. Returns the summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dynembed.core.config import METRICS
from dynembed.core.errors import ConfigError
from dynembed.core.models import RetrievalSpec, VectorSpec
from dynembed.core.telemetry import percentile
from dynembed.embedders.catalog import spec_for
from dynembed.quality.evaluation import (
    EvaluationResult,
    evaluate_run,
    latency_summary,
    load_golden_set,
)
from dynembed.rebuild.inputs import describe_errors
from dynembed_ops.demo.monitors import run_monitors
from dynembed_ops.demo.rebuild import run_rebuild_part
from dynembed_ops.demo.state import DEMO_SCHEMA, READER, DemoOptions, DemoState
from dynembed_ops.editstream import batches, read_events
from dynembed_ops.local.stack import LocalStack
from dynembed_ops.source_app import source_app_for


def candidate_settings(
    retrieval: str | None,
    fusion: str | None,
    lexical_weight: float | None,
    precision: str | None,
    oversample: float | None,
) -> tuple[RetrievalSpec, VectorSpec]:
    """The candidate's retrieval and vector settings from the demo's options (validated by
    the same models as the rebuild input, so a wrong value names its option's field)."""
    try:
        chosen = RetrievalSpec.model_validate(
            {
                k: v
                for k, v in (("mode", retrieval), ("fusion", fusion), ("lexical_weight", lexical_weight))
                if v is not None
            }
        )
        vectors = VectorSpec.model_validate(
            {k: v for k, v in (("precision", precision), ("oversample", oversample)) if v is not None}
        )
    except ValidationError as exc:
        raise ConfigError(f"demo candidate: {describe_errors(exc)}") from None
    return chosen, vectors


def run_demo(options: DemoOptions, console: Console | None = None) -> dict[str, Any]:
    console = console or Console()
    spec_for(options.baseline_model)  # unknown model: fail before starting anything
    if options.candidate_model:
        spec_for(options.candidate_model)
    golden = load_golden_set(options.queries, options.qrels)
    started = time.monotonic()
    with LocalStack(schema=DEMO_SCHEMA) as stack:
        state = DemoState(stack, options, console, golden)
        console.rule("[bold]dynembed demo: the whole pipeline on one machine")
        info = stack.info
        assert info is not None
        console.print(f"AWS (moto): {info.aws_url}   OpenSearch (osmem): {info.opensearch_url}")
        _bootstrap(state)
        _load_corpus(state)
        state.summary["evaluation"] = metrics_dict(_evaluate(state, label="baseline"))
        _replay_edits(state)
        _changes(state)
        if options.candidate_model:
            run_rebuild_part(state, after_decision=lambda: run_monitors(state))
        else:
            run_monitors(state)
        state.summary.pop("freshness_from", None)
        state.summary["wall_s"] = round(time.monotonic() - started, 1)
        _print_summary(state)
    return state.summary


# ---- steps -----------------------------------------------------------------------------------------


def metrics_dict(result: EvaluationResult) -> dict[str, float]:
    return {
        f"ndcg@{result.k}": result.ndcg,
        f"recall@{result.k}": result.recall,
        f"mrr@{result.k}": result.mrr,
    }


def _bootstrap(state: DemoState) -> None:
    svc = state.stack.services()
    gen = svc.bootstrap(state.options.baseline_model)
    state.summary["baseline_generation"] = gen.id
    state.console.print(
        f"Generation [bold]{gen.id}[/]: model {gen.model.model_id}, chunker {gen.chunker.version}"
    )


def _timed(state: DemoState, title: str, action: Callable[[], Any]) -> Any:
    with state.console.status(title):
        started = time.monotonic()
        result = action()
    state.console.print(f"{title} [dim]({time.monotonic() - started:.1f} s)[/]")
    return result


def _load_corpus(state: DemoState) -> None:
    svc = state.stack.services()
    app = source_app_for(svc)
    docs = _timed(
        state,
        f"Loading {state.options.corpus.name} into the source table",
        lambda: app.load(state.options.corpus, defaults={"acl": ["public"], "tenant": "python-docs"}),
    )
    before = state.telemetry.get(METRICS.embeddings_computed)
    _timed(state, "Syncing: stream → classify → SQS → sync → OpenSearch", lambda: state.stack.drain())
    chunks = _count_chunks(state)
    embedded = state.telemetry.get(METRICS.embeddings_computed) - before
    state.summary.update(corpus_docs=docs, chunks=chunks, initial_embedded_texts=int(embedded))
    state.console.print(f"  {docs} docs → {chunks} chunks, {int(embedded)} texts embedded")


def _evaluate(state: DemoState, label: str, generation: str | None = None) -> EvaluationResult:
    svc = state.stack.services()
    latencies: list[float] = []
    run: dict[str, list[str]] = {}

    def go() -> None:
        for query_id in state.golden.judged_query_ids:
            t0 = time.perf_counter()
            response = svc.search(
                state.golden.queries[query_id], READER, k=state.options.k * 3, generation=generation
            )
            latencies.append((time.perf_counter() - t0) * 1000)
            run[query_id] = list(dict.fromkeys(r.doc_id for r in response.results))

    _timed(state, f"Evaluating {label} on {len(state.golden.judged_query_ids)} queries", go)
    result = evaluate_run(run, state.golden, k=state.options.k)
    lat = latency_summary(latencies)
    state.console.print(
        f"  nDCG@{result.k} {result.ndcg:.3f}   Recall@{result.k} {result.recall:.3f}   "
        f"MRR@{result.k} {result.mrr:.3f}   query p50 {lat['p50']:.0f} ms"
    )
    return result


def _replay_edits(state: DemoState) -> None:
    if state.options.edits is None:
        return
    svc = state.stack.services()
    app = source_app_for(svc)
    events = read_events(state.options.edits)
    tel = state.telemetry
    rows = []
    state.summary["freshness_from"] = freshness_start = len(tel.freshness_s)
    totals = {"commits": 0, "events": 0, "embedded": 0, "skipped": 0, "chunks_deleted": 0}

    # Only the docs the replayed commits touch: the rest of the snapshot would add nothing to
    # the story but embedding time (and the rebuild would embed it again).
    touched = {e.doc_id for e in events if 0 < e.commit_index <= state.options.max_commits}
    events = [e for e in events if e.commit_index > 0 or e.doc_id in touched]

    def replay() -> None:
        for commit_index, group in batches(events, state.options.max_commits):
            before_emb = tel.get(METRICS.embeddings_computed)
            before_skip = tel.get(METRICS.embeddings_skipped)
            before_del = tel.get(METRICS.chunks_deleted)
            for event in group:
                if event.op == "delete":
                    app.delete(event.doc_id)
                else:
                    app.put(
                        {
                            "doc_id": event.doc_id,
                            "title": event.title,
                            "body": event.body,
                            "acl": ["public"],
                            "tenant": "powertools-docs",
                            "category": "user-guide",
                        }
                    )
            state.stack.drain()
            embedded = int(tel.get(METRICS.embeddings_computed) - before_emb)
            skipped = int(tel.get(METRICS.embeddings_skipped) - before_skip)
            deleted = int(tel.get(METRICS.chunks_deleted) - before_del)
            if commit_index > 0:
                totals["commits"] += 1
                totals["events"] += len(group)
                totals["embedded"] += embedded
                totals["skipped"] += skipped
                totals["chunks_deleted"] += deleted
                rows.append((commit_index, group, embedded, skipped, deleted))

    _timed(
        state,
        f"Replaying real edits from {state.options.edits.name} (snapshot + {state.options.max_commits} commits)",
        replay,
    )
    table = Table(title="Real edits: what each commit cost", show_lines=False)
    for col in ("commit", "docs", "diff chars", "chunks embedded", "chunks reused", "chunks deleted"):
        table.add_column(col, justify="right" if col != "docs" else "left")
    for commit_index, group, embedded, skipped, deleted in rows[:12]:
        names = ", ".join(sorted({e.doc_id.removeprefix("docs/") for e in group}))
        table.add_row(
            str(commit_index),
            names[:48],
            str(sum(e.diff_chars for e in group)),
            str(embedded),
            str(skipped),
            str(deleted),
        )
    state.console.print(table)
    if len(rows) > 12:
        state.console.print(f"  … {len(rows) - 12} more commits")
    lags = tel.freshness_s[freshness_start:]
    state.summary["edits"] = {
        **totals,
        "freshness_p50_s": percentile(lags, 50),
        "freshness_p95_s": percentile(lags, 95),
    }
    state.console.print(
        f"  {totals['commits']} commits, {totals['events']} doc edits: {totals['embedded']} chunks embedded, "
        f"{totals['skipped']} reused without embedding"
    )


def _search_docs(state: DemoState, text: str, principal: str | list[str], k: int = 30) -> list[str]:
    svc = state.stack.services()
    response = svc.search(text, principal, k=k)
    return list(dict.fromkeys(r.doc_id for r in response.results))


def _changes(state: DemoState) -> None:
    """Metadata on one doc, access revoked on another, a third deleted: no embeddings needed."""
    svc = state.stack.services()
    app = source_app_for(svc)
    tel = state.telemetry
    state.summary.setdefault("freshness_from", len(tel.freshness_s))
    query_ids = state.golden.judged_query_ids
    found = []
    for query_id in query_ids:  # docs the reader finds for their own question
        relevant = next(iter(state.golden.qrels[query_id]))
        if relevant in _search_docs(state, state.golden.queries[query_id], READER, 30):
            found.append((query_id, relevant))
        if len(found) == 3:
            break
    (_, meta_doc), (revoke_q, revoke_doc), (delete_q, delete_doc) = found
    before = {
        name: tel.get(name)
        for name in (METRICS.embeddings_computed, "MetadataPatches", "AccessPatches", "Deletes")
    }
    app.update(meta_doc, {"views": 42})  # an attribute the pipeline does not read: skipped
    app.update(meta_doc, {"category": "reviewed"})
    app.update(revoke_doc, {"acl": ["staff"]})
    app.delete(delete_doc)
    _timed(state, "Metadata change, access revocation and delete", lambda: state.stack.drain())
    revoked_hidden = revoke_doc not in _search_docs(state, state.golden.queries[revoke_q], READER)
    staff_sees = revoke_doc in _search_docs(state, state.golden.queries[revoke_q], ["staff"])
    delete_gone = all(
        delete_doc not in _search_docs(state, state.golden.queries[delete_q], who)
        for who in (READER, ["staff", READER])
    )
    embedded_for_changes = int(tel.get(METRICS.embeddings_computed) - before[METRICS.embeddings_computed])
    state.summary.update(
        access_revocation_ok=bool(revoked_hidden and staff_sees),
        delete_ok=bool(delete_gone),
        changes={
            "metadata_doc": meta_doc,
            "revoked_doc": revoke_doc,
            "deleted_doc": delete_doc,
            "embedded_texts": embedded_for_changes,
        },
    )
    counters = tel.counters
    state.summary["sync"] = {
        "embedded_texts": int(tel.get(METRICS.embeddings_computed)),
        "skipped": int(counters.get(f"{METRICS.decisions}[kind=skip]", 0)),
        "embeddings_reused": int(tel.get(METRICS.embeddings_skipped)),
        "metadata_patches": int(tel.get("MetadataPatches")),
        "access_patches": int(tel.get("AccessPatches")),
        "deletes": int(tel.get("Deletes")),
        "content_jobs": int(counters.get(f"{METRICS.decisions}[kind=content]", 0)),
        "chunks_written": int(tel.get(METRICS.chunks_written)),
        "chunks_deleted": int(tel.get(METRICS.chunks_deleted)),
        "version_conflicts": int(tel.get(METRICS.version_conflicts)),
    }
    # Freshness of live changes (edits and the changes above), not of the initial bulk load.
    lags = tel.freshness_s[state.summary.get("freshness_from", 0) :]
    state.summary["freshness_p50_s"] = percentile(lags, 50)
    state.summary["freshness_p95_s"] = percentile(lags, 95)
    ok = "[green]yes[/]"
    no = "[red]NO[/]"
    state.console.print(
        f"  a view counter on {meta_doc} skipped; metadata patched on it (no embedding); access revoked on {revoke_doc}: reader no longer sees it "
        f"{ok if revoked_hidden else no}, staff still does {ok if staff_sees else no}; "
        f"{delete_doc} deleted and gone {ok if delete_gone else no}; texts embedded for these: {embedded_for_changes}"
    )


def _count_chunks(state: DemoState) -> int:
    svc = state.stack.services()
    target = svc.index.alias_target(svc.settings.index_alias)
    assert target is not None, f"alias {svc.settings.index_alias} points at no index"
    svc.index.refresh(target)
    return sum(1 for _ in svc.index.iter_chunks(target, ["doc_id"]))


def _info(state: DemoState) -> Any:
    assert state.stack.info is not None, "the local stack is not started"
    return state.stack.info


def _print_summary(state: DemoState) -> None:
    s = state.summary
    table = Table(title="dynembed demo: summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    ev = {k.split("@")[0]: v for k, v in s.get("evaluation", {}).items()}
    rows = [
        ("corpus docs", s.get("corpus_docs")),
        ("chunks (active index)", s.get("chunks")),
        (
            "nDCG@10 / Recall@10 / MRR@10",
            f"{ev.get('ndcg', 0):.3f} / {ev.get('recall', 0):.3f} / {ev.get('mrr', 0):.3f}",
        ),
        ("texts embedded (all)", s.get("sync", {}).get("embedded_texts")),
        ("chunks reused without embedding", s.get("sync", {}).get("embeddings_reused")),
        ("skipped changes", s.get("sync", {}).get("skipped")),
        (
            "metadata / access patches",
            f"{s.get('sync', {}).get('metadata_patches')} / {s.get('sync', {}).get('access_patches')}",
        ),
        ("deletes", s.get("sync", {}).get("deletes")),
        ("freshness p50 / p95 (s)", f"{_fmt(s.get('freshness_p50_s'))} / {_fmt(s.get('freshness_p95_s'))}"),
        ("revoked principal blocked", s.get("access_revocation_ok")),
        ("deleted doc gone", s.get("delete_ok")),
    ]
    if "decision" in s:
        rows += [
            (
                "baseline → candidate nDCG@10",
                f"{s['evaluation_baseline']['ndcg@10']:.3f} → {s['evaluation_candidate']['ndcg@10']:.3f}",
            ),
            ("rebuild estimate vs actual: chunks / texts embedded / tokens", _estimate_errors(s)),
            ("decision", s["decision"]),
            ("alias before → after", f"{s['alias_before']} → {s['alias_after']}"),
            ("rollback ok", s.get("rollback_ok")),
        ]
    if "canary" in s:
        canary, sentinel = s["canary"], s.get("sentinel") or {}
        rows += [
            (
                f"canary of {canary['generation']}: nDCG@10 / drop",
                f"{_fmt(canary.get('ndcg@10'))} / {_fmt(canary.get('ndcg_drop'))}",
            ),
            (
                "sentinel searchable / gone (s)",
                f"{_fmt(sentinel.get('freshness_s'))} / {_fmt(sentinel.get('delete_s'))}",
            ),
            ("report", s.get("report_html")),
        ]
    rows.append(("wall time (s)", s.get("wall_s")))
    for name, value in rows:
        table.add_row(name, str(value))
    state.console.print(table)


def _estimate_errors(summary: dict[str, Any]) -> str:
    versus = summary.get("estimate_vs_actual") or {}
    cells = []
    for figure in ("chunks", "texts embedded", "tokens embedded"):
        row = versus.get(figure)
        if row is None:
            cells.append("n/a")
            continue
        error = row.get("error")
        cells.append(
            f"{row['estimate']:,.0f} vs {row['actual']:,.0f}" + ("" if error is None else f" ({error:+.1%})")
        )
    return " / ".join(cells)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
