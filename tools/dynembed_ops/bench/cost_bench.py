"""`dynembed bench cost`: what each kind of change, and each rebuilt item, really asks of AWS.

On a local stack (moto + osmem + the real handlers) with ``RequestMeter`` installed:

1. load ``docs`` FAQ docs and sync them (not measured: the initial load);
2. for each change kind — content edit (one sentence added in the middle of the body),
   metadata (``category``), access (``acl``), delete — apply ``changes`` changes to distinct docs
   with the meter paused (those are the source application's writes), then drain the pipeline
   with the meter running; the counts divided by ``changes`` are that kind's cost per change;
3. rebuild to a new generation (hash-256, a smaller chunker, so every chunk is new) through the
   real state machine; the counts divided by the docs are the cost per rebuilt item.

Counts per change depend on how changes arrive: here every kind's changes are drained together,
so the stream and the queue deliver full batches. ``dynembed.cost.model`` re-derives the
per-batch requests (invocations, SQS receives and deletes) for the arrival rate it is given;
the per-item ones (read and write units, bulk items, tokens) it takes as measured.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynembed.core.config import TUNING
from dynembed.core.models import ChunkerSpec
from dynembed.core.schema import SourceSchema
from dynembed.cost.tokens import CharsPerToken
from dynembed.embedders.catalog import get_embedder, spec_for
from dynembed.embedders.counting import CountingEmbedder
from dynembed.sync.chunking import chunker_for
from dynembed_ops import paths

SCHEMA = SourceSchema(
    content_attributes=("title", "body"),
    metadata_attributes=("category",),
    access_attributes=("acl",),
    tenant_attribute="tenant",
)
MODEL = "hash-256"
REBUILD_CHUNKER = {"target_chars": 600, "max_chars": 1200, "min_chars": 200}
KINDS = ("content", "metadata", "access", "delete")
LAMBDA_MEMORY_MB = {"classify": 512, "sync": 1024, "workflow": 1024}
"""As the CDK stack sizes them (infra/dynembed_infra/ingest.py, workflow.py)."""


@dataclass(frozen=True)
class CostBenchOptions:
    docs: int = 300
    changes: int = 60
    queries: int = 20


def _corpus(docs: int, queries: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[list[str]]]:
    """``docs`` FAQ docs that include the relevant docs of the first ``queries`` queries."""
    query_rows = [json.loads(line) for line in paths.FAQ_QUERIES.read_text().splitlines()[:queries]]
    wanted = {q["query_id"] for q in query_rows}
    qrels = [
        line.split("\t") for line in paths.FAQ_QRELS.read_text().splitlines() if line.split("\t")[0] in wanted
    ]
    relevant = {row[1] for row in qrels}
    corpus = [json.loads(line) for line in paths.FAQ_CORPUS.read_text().splitlines()]
    chosen = [d for d in corpus if d["doc_id"] in relevant]
    chosen += [d for d in corpus if d["doc_id"] not in relevant][: max(0, docs - len(chosen))]
    return chosen[:docs], query_rows, qrels


def _edited(body: str, number: int) -> str:
    """One sentence added at the sentence boundary nearest the middle of the body."""
    middle = len(body) // 2
    cut = body.find(". ", middle)
    cut = len(body) if cut < 0 else cut + 2
    return body[:cut] + f"An added sentence, number {number}, about the edit. " + body[cut:]


def _per(counts: dict[str, Any], divisor: int) -> dict[str, Any]:
    return {
        "requests": {k: round(v / divisor, 4) for k, v in sorted(counts["requests"].items())},
        "units": {k: round(v / divisor, 4) for k, v in sorted(counts["units"].items())},
    }


def run_cost_bench(options: CostBenchOptions) -> dict[str, Any]:
    from dynembed_ops.local.meter import RequestMeter
    from dynembed_ops.local.stack import LocalStack
    from dynembed_ops.local.stepfunctions import run_rebuild
    from dynembed_ops.source_app import source_app_for

    docs, query_rows, qrels = _corpus(options.docs, options.queries)
    started = time.monotonic()
    # DynamoDB in this process: the meter sizes each write from moto's own tables.
    with LocalStack(schema=SCHEMA, dynamodb_process=False) as stack:
        svc = stack.services()
        counting = CountingEmbedder(get_embedder(MODEL), token_counter=CharsPerToken().count)
        svc._embedders[spec_for(MODEL).model_id] = counting
        svc.bootstrap(MODEL)
        app = source_app_for(svc)
        work = Path(tempfile.mkdtemp(prefix="dynembed-cost-bench-"))
        corpus_path = work / "corpus.jsonl"
        corpus_path.write_text("\n".join(json.dumps({**d, "acl": ["public"], "tenant": "faq"}) for d in docs))
        (work / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in query_rows))
        (work / "qrels.tsv").write_text("\n".join("\t".join(r) for r in qrels))
        app.load(corpus_path)
        stack.drain()

        meter = RequestMeter().install(stack)
        per_change: dict[str, Any] = {}
        ids = [d["doc_id"] for d in docs]
        bodies = {d["doc_id"]: d["body"] for d in docs}
        offset = 0
        for kind in KINDS:
            targets = ids[offset : offset + options.changes]
            offset += options.changes
            meter.reset()
            counting.reset()
            with meter.paused():
                for number, doc_id in enumerate(targets):
                    if kind == "content":
                        app.update(doc_id, {"body": _edited(bodies[doc_id], number)})
                    elif kind == "metadata":
                        app.update(doc_id, {"category": f"reviewed-{number % 3}"})
                    elif kind == "access":
                        app.update(doc_id, {"acl": ["public", f"team-{number % 5}"]})
                    else:
                        app.delete(doc_id)
            stack.drain()
            counts = meter.snapshot()
            counts["units"].update(_embedding_units(counting))
            per_change[kind] = _per(counts, len(targets))

        live = len(ids) - options.changes  # one kind deleted its docs
        meter.reset()
        counting.reset()
        payload = {
            "model": MODEL,
            "chunker": REBUILD_CHUNKER,
            "eval": {
                "queries": str((work / "queries.jsonl").resolve()),
                "qrels": str((work / "qrels.tsv").resolve()),
            },
            "backfill_segments": 2,
            "page_size": 50,
            "pages_per_task": 4,
            "catchup_wait_s": 1,
            "catchup_max_checks": 60,
            "comment": "dynembed bench cost",
        }
        rebuild_counts = _rebuild(stack, meter, counting, payload, run_rebuild)
        meter.uninstall()

    chunker = chunker_for(ChunkerSpec())
    chunk_chars = [len(c.text) for d in docs for c in chunker.chunk(SCHEMA.content_of(d))]
    return {
        "benchmark": "dynembed bench cost",
        "measured_at": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{platform.system()} {platform.machine()}, python {platform.python_version()}",
        "model": MODEL,
        "docs": len(docs),
        "changes_per_kind": options.changes,
        "corpus": {
            "source": "data/python-faq/corpus.jsonl",
            "avg_doc_chars": round(sum(len(d["title"]) + len(d["body"]) for d in docs) / len(docs), 1),
            "avg_chunks_per_doc": round(len(chunk_chars) / len(docs), 3),
            "avg_chunk_chars": round(sum(chunk_chars) / len(chunk_chars), 1),
        },
        "lambda_memory_mb": LAMBDA_MEMORY_MB,
        "batching": {
            "stream_batch_size": TUNING.stream_batch_size,
            "sqs_batch_size": TUNING.sqs_batch_size,
            "note": "each kind's changes were drained together: full batches",
        },
        "per_change": per_change,
        "per_rebuilt_item": _per(rebuild_counts, live),
        "rebuilt_items": live,
        "wall_s": round(time.monotonic() - started, 1),
    }


def _embedding_units(counting: CountingEmbedder) -> dict[str, float]:
    return {
        "embedding_texts": float(counting.document_texts),
        "embedding_chars": float(counting.document_chars),
        "embedding_tokens_4cpt": float(counting.document_tokens),
    }


def _rebuild(
    stack: Any, meter: Any, counting: CountingEmbedder, payload: dict[str, Any], run: Any
) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    with stack.background(interval_s=0.05):
        output = run(stack, payload, timeout_s=600)
    counts = meter.snapshot()
    counts["units"].update(_embedding_units(counting))
    # Standard workflows bill every state entered (children of a Distributed Map too: locally
    # they run inline, so the one history holds them all).
    from dynembed_ops.local.stepfunctions import state_machine_arn

    execution = sfn.list_executions(stateMachineArn=state_machine_arn(sfn))["executions"][0]["executionArn"]
    transitions, token = 0, None
    while True:
        page = sfn.get_execution_history(
            executionArn=execution, maxResults=1000, **({"nextToken": token} if token else {})
        )
        transitions += sum(1 for e in page["events"] if e["type"].endswith("StateEntered"))
        token = page.get("nextToken")
        if not token:
            break
    counts["units"]["sfn_transitions"] = float(transitions)
    counts["decision"] = output.get("decision")
    return counts
