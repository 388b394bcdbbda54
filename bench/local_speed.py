"""How fast the local stack is: syncing the shipped corpus, and the demo's rebuild against the
time its embeddings take alone.

    .venv/bin/python bench/local_speed.py [--part sync|rebuild|both] [--json OUT]

- sync: a fresh local stack (moto + osmem + pumps + the real handlers), one hash-256
  generation, the 1,500-doc FAQ corpus written to the source table (not timed), then the
  pipeline drained (timed): docs per second from stream to index.
- rebuild: the demo's rebuild (static-64 serving the corpus; the real state machine on moto
  builds minilm with the demo's input, pumps running), timed from start to decision; then the
  same chunk texts embedded by MiniLM alone, in the backfill's batches (one scan page's texts
  per call), timed: the ratio is what the workflow adds to its embeddings. Wall time on a
  shared machine measures the neighbours too, so the process's CPU time is reported beside it
  (torch's threads included): its ratio is the work the workflow adds.

It uses only what the stack, the CLI and the demo use, so it runs on older checkouts too
(PYTHONPATH=<checkout>/layers/core:<checkout>/tools:<checkout>/functions:<checkout>).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dynembed.core.models import ChunkerSpec
from dynembed.core.schema import SourceSchema
from dynembed.embedders.catalog import get_embedder
from dynembed.sync.chunking import chunker_for
from dynembed_ops import paths
from dynembed_ops.local.stack import LocalStack
from dynembed_ops.local.stepfunctions import run_rebuild
from dynembed_ops.source_app import source_app_for

SCHEMA = SourceSchema(
    content_attributes=("title", "body"),
    metadata_attributes=("kind", "source", "category"),
    access_attributes=("acl",),
    tenant_attribute="tenant",
)
DEFAULTS = {"acl": ["public"], "tenant": "python-docs"}
PAGE_SIZE = 50


def _cpu_load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def measure_sync() -> dict[str, Any]:
    with LocalStack(schema=SCHEMA) as stack:
        svc = stack.services()
        svc.bootstrap("hash-256")
        docs = source_app_for(svc).load(paths.FAQ_CORPUS, defaults=DEFAULTS)
        started, cpu = time.monotonic(), time.process_time()
        stack.drain()
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    return {
        "docs": docs,
        "seconds": round(seconds, 1),
        "docs_per_s": round(docs / seconds, 1),
        "cpu_s": round(cpu, 1),
        "docs_per_cpu_s": round(docs / cpu, 1),
        "load": _cpu_load(),
    }


def measure_rebuild() -> dict[str, Any]:
    with LocalStack(schema=SCHEMA) as stack:
        svc = stack.services()
        svc.bootstrap("static-64")
        source_app_for(svc).load(paths.FAQ_CORPUS, defaults=DEFAULTS)
        stack.drain()
        payload = {
            "model": "minilm",
            "eval": {"queries": str(paths.FAQ_QUERIES.resolve()), "qrels": str(paths.FAQ_QRELS.resolve())},
            "k": 10,
            "eval_principal": ["reader"],
            "backfill_segments": 2,
            "page_size": PAGE_SIZE,
            "pages_per_task": 4,
            "catchup_wait_s": 1,
            "catchup_max_checks": 300,
            "comment": "bench/local_speed.py",
        }
        os.environ.setdefault("DYNEMBED_REPORTS_DIR", tempfile.mkdtemp(prefix="dynembed-speed-"))
        started, cpu = time.monotonic(), time.process_time()
        with stack.background():
            output = run_rebuild(stack, payload, timeout_s=1800)
        rebuild_s, rebuild_cpu = time.monotonic() - started, time.process_time() - cpu
        usage = output["evaluation"]["embeddings"]
    texts = _page_batches()
    embedder = get_embedder("minilm")
    embedder.embed_documents(["warm up"])
    started, cpu = time.monotonic(), time.process_time()
    for batch in texts:
        embedder.embed_documents(batch)
    embed_s, embed_cpu = time.monotonic() - started, time.process_time() - cpu
    count = sum(len(b) for b in texts)
    return {
        "decision": output.get("decision"),
        "rebuild_s": round(rebuild_s, 1),
        "texts_embedded_by_the_rebuild": usage.get("computed"),
        "texts_embedded_alone": count,
        "embedding_alone_s": round(embed_s, 1),
        "ratio": round(rebuild_s / embed_s, 3),
        "rebuild_cpu_s": round(rebuild_cpu, 1),
        "embedding_alone_cpu_s": round(embed_cpu, 1),
        "cpu_ratio": round(rebuild_cpu / embed_cpu, 3),
        "load": _cpu_load(),
    }


def _page_batches() -> list[list[str]]:
    """The candidate's distinct chunk texts, a backfill page's worth per call."""
    chunker = chunker_for(ChunkerSpec())
    seen: set[str] = set()
    batches: list[list[str]] = []
    docs = [json.loads(line) for line in paths.FAQ_CORPUS.read_text().splitlines()]
    for start in range(0, len(docs), PAGE_SIZE):
        batch = []
        for doc in docs[start : start + PAGE_SIZE]:
            for chunk in chunker.chunk([("title", doc["title"]), ("body", doc["body"])]):
                if chunk.content_hash not in seen:
                    seen.add(chunk.content_hash)
                    batch.append(chunk.text)
        if batch:
            batches.append(batch)
    return batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("sync", "rebuild", "both"), default="both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if args.part in ("sync", "both"):
        result["sync"] = measure_sync()
        s = result["sync"]
        print(
            f"sync: {s['docs']} docs in {s['seconds']} s = {s['docs_per_s']} docs/s "
            f"({s['docs_per_cpu_s']} docs per CPU second; load {s['load']})",
            flush=True,
        )
    if args.part in ("rebuild", "both"):
        result["rebuild"] = measure_rebuild()
        r = result["rebuild"]
        print(
            f"rebuild: {r['rebuild_s']} s for {r['texts_embedded_by_the_rebuild']} texts; the same "
            f"{r['texts_embedded_alone']} texts alone: {r['embedding_alone_s']} s; ratio {r['ratio']} "
            f"(CPU {r['rebuild_cpu_s']} s vs {r['embedding_alone_cpu_s']} s: {r['cpu_ratio']}; load {r['load']})",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
